"""``robot-rl train-bc RUN``: behaviour cloning from the run's recorded episodes, exported to ONNX.

Learns from ``RUN/demos/`` (teleoperated or scripted demonstrations; recorded with the scripted
expert first when there are none and the session says ``demos.source: expert``), ``RUN/bc/``
(HG-DAgger intervention labels) or both (``--source``). Writes
``RUN/checkpoints/bc_policy.safetensors``, ``RUN/exports/bc_policy.onnx`` (the same embedded spec
as a SAC export, so ``robot-rl deploy`` and a residual session's ``base:`` take it) and
``RUN/bc_report.json`` (evaluation in simulation).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

FINAL_EVAL_SEED = 1_000_000  # the seeds robot-rl train evaluates on, so the figures compare


def train_bc_run(run_dir: str | Path, source: str = "demos", chunk: int = 4, steps: int = 3000,
                 max_episodes: int | None = None, eval_episodes: int = 50, config_path: str | Path | None = None,
                 seed: int = 0, log=print) -> dict:
    import torch

    from policies.bc import BCSettings, episode_dirs, save_bc, train_bc
    from policies.export.onnx_export import OnnxPolicy, export_onnx
    from policies.export.spec import build_export_spec
    from robot_rl.actor import evaluate_policy
    from robot_rl.config import ConfigError, dump_session, load_session
    from robot_rl.envs import action_bounds, control_hz, denormalize_action, make_env
    from robot_rl.episodes import episode_paths, read_episode
    from robot_rl.rundir import RunDir, write_json_atomic
    from robot_rl.session import record_expert_demos
    from robot_rl.spaces import obs_spec_from_space

    torch.set_num_threads(1)
    start = time.monotonic()
    run = RunDir(Path(run_dir))
    config_file = Path(config_path) if config_path else run.config
    if not config_file.is_file():
        raise ConfigError(f"{run.root} has no config.yaml: pass --config SESSION.yaml naming the task the episodes are from.")
    config = load_session(config_file)
    # BC learns the plain task, whatever residual section the run's session has
    config = config.model_copy(update={"residual": None})
    if not run.config.is_file():
        run.make()
        dump_session(config, run.config)
    if source != "bc" and not episode_paths(run.demos) and config.demos.source == "expert":
        record_expert_demos(config, run.demos, config.demos.episodes, log)  # a simulated task: the scripted expert demonstrates
    paths = [p for d in episode_dirs(run.root, source) for p in episode_paths(d)]
    if max_episodes is not None:
        paths = paths[:max_episodes]
    if not paths:
        raise ConfigError(f"no episodes in {', '.join(str(d) for d in episode_dirs(run.root, source))}: record demos "
                          f"first (robot-rl train records them for demos.source: expert) or pick another --source.")
    episodes = [read_episode(p) for p in paths]
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    settings = BCSettings(chunk=chunk, steps=steps, seed=seed)
    log(f"behaviour cloning on {len(episodes)} episodes from {source} (chunk {chunk}, {steps} steps)")
    policy, figures = train_bc(episodes, spec, low, high, settings, log=log)
    checkpoint = save_bc(policy, run.checkpoints / "bc_policy.safetensors", {"source": source, "episodes": len(episodes)})

    export_spec = build_export_spec(env, spec, control_hz=control_hz(env, config), env_id=config.env,
                                    env_kwargs=config.env_kwargs, session=config.name, training_run=run.root)
    export_spec["policy"] = {"kind": "bc", "chunk": chunk, "executes": "first action of the chunk",
                             "source": source, "episodes": len(episodes)}
    parity = {k[len("obs/"):]: v[:256] for k, v in episodes[0].items() if k.startswith("obs/")}
    exported = export_onnx(policy, export_spec, run.exports / "bc_policy.onnx", parity)
    log(f"exported {exported['path']} (parity max abs error {exported['parity_max_abs_err']:.2e})")

    report = {"source": source, "chunk": chunk, "steps": steps, **figures, "checkpoint": str(checkpoint),
              "onnx_path": exported["path"], "onnx_sha256": exported["sha256"],
              "onnx_parity_max_abs_err": exported["parity_max_abs_err"], "eval_episodes": eval_episodes}
    if eval_episodes > 0:
        torch_eval = evaluate_policy(env, lambda o: denormalize_action(policy.act(o), low, high), eval_episodes,
                                     FINAL_EVAL_SEED)
        onnx_eval = evaluate_policy(env, OnnxPolicy(exported["path"]), eval_episodes, FINAL_EVAL_SEED)
        report.update(eval_return=torch_eval["mean_return"], success_rate=torch_eval["success_rate"],
                      onnx_eval_return=onnx_eval["mean_return"], onnx_success_rate=onnx_eval["success_rate"])
        log(f"evaluation over {eval_episodes} episodes: return {torch_eval['mean_return']:.2f}, "
            f"success {torch_eval['success_rate']}")
    env.close()
    report["wall_s"] = round(time.monotonic() - start, 1)
    write_json_atomic(run.root / "bc_report.json", report)
    return report


def register(sub) -> None:
    parser = sub.add_parser("train-bc", help="behaviour cloning from a run's demos / HG-DAgger labels, exported to ONNX")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--source", choices=("demos", "bc", "both"), default="demos",
                        help="RUN/demos (demonstrations), RUN/bc (HG-DAgger intervention labels) or both")
    parser.add_argument("--chunk", type=int, default=4, help="actions predicted per observation (1: plain MLP policy)")
    parser.add_argument("--steps", type=int, default=3000, help="gradient steps")
    parser.add_argument("--max-episodes", type=int, default=None, help="learn from the first N episodes only")
    parser.add_argument("--eval-episodes", type=int, default=50, help="simulated evaluation episodes (0: none)")
    parser.add_argument("--config", type=Path, default=None, help="session file, when RUN has no config.yaml")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args) -> int:
    from robot_rl.config import ConfigError

    if args.chunk < 1 or args.steps < 1:
        print("robot-rl train-bc: --chunk and --steps must be at least 1.", file=sys.stderr)
        return 2
    try:
        report = train_bc_run(args.run_dir, args.source, args.chunk, args.steps, args.max_episodes, args.eval_episodes,
                              args.config, args.seed)
    except (ConfigError, ValueError) as err:
        print(f"robot-rl train-bc: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: report[k] for k in ("onnx_path", "success_rate") if k in report}))
    return 0
