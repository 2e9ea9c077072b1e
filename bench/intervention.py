"""Human-in-the-loop on pick-cube: env steps to the success bar with and without the simulated human.

Arms (each a real session: learner and actor processes over ZeroMQ, `launch/sim_pick_cube_hil.yaml`):
- `with`: hil-serl, the scripted intervener takes over when the policy drifts from the expert's plan;
- `without`: the same file with its `intervention` section removed (same demos, same budgets);
- `rlif`: `launch/sim_pick_cube_rlif.yaml`, no task reward and no demos, only the takeover penalty.

"Steps to the bar" are the env steps at the periodic evaluation where the session's stopping bar
(`train.stop_at_success_rate`, held for `stop_after_evals_at_bar` evaluations in a row: the base
session's bar) was met; a session that never meets it counts as its `max_env_steps` (censored, and
marked so). Evaluations never intervene. rlif reports its final policy's success over 50 fresh
deterministic episodes. Each finished session is appended to `--results` (JSON lines), so an
interrupted benchmark resumes where it stopped. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from robot_rl.actor import evaluate_policy  # noqa: E402
from robot_rl.config import dump_session, load_session  # noqa: E402
from robot_rl.envs import action_bounds, denormalize_action  # noqa: E402
from robot_rl.rundir import read_jsonl  # noqa: E402
from robot_rl.session import load_final_policy, prepare_run, record_expert_demos, run_training  # noqa: E402

torch.set_num_threads(1)
LAUNCH = Path(__file__).resolve().parents[1] / "launch"
RLIF_EVAL_EPISODES = 50
RLIF_EVAL_SEED = 2_000_000


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def session_config(arm: str, seed: int, quick: bool, max_env_steps: int | None, scripted: dict | None = None):
    config = load_session(LAUNCH / ("sim_pick_cube_rlif.yaml" if arm == "rlif" else "sim_pick_cube_hil.yaml"))
    if arm == "without":
        config = config.model_copy(update={"intervention": None})
    elif scripted:  # another simulated human than the launch file's
        intervention = config.intervention
        config = config.model_copy(update={"intervention": intervention.model_copy(
            update={"scripted": intervention.scripted.model_copy(update=scripted)})})
    train = {}
    if quick:  # a smoke test of the whole path, not a measurement; warm-up >= batch size, or the paced actor
        # would wait for learner updates that cannot start
        train = {"max_env_steps": 800, "eval_every_env_steps": 400, "eval_episodes": 2}
        config = config.model_copy(update={
            "learner": config.learner.model_copy(update={"warmup_steps": 300, "hidden_dims": [64, 64]}),
            "demos": config.demos.model_copy(update={"episodes": min(config.demos.episodes, 2)})})
    if max_env_steps:
        train["max_env_steps"] = max_env_steps
    config = config.model_copy(update={"seed": seed, "name": f"{config.name}_{arm}_s{seed}",
                                       "train": config.train.model_copy(update=train)})
    return type(config).model_validate(config.model_dump())


def steps_to_bar(evals: list[dict], config) -> int | None:
    train, in_a_row = config.train, 0
    for record in evals:
        in_a_row = in_a_row + 1 if (record.get("success_rate") or 0.0) >= train.stop_at_success_rate else 0
        if in_a_row >= train.stop_after_evals_at_bar:
            return int(record["env_steps"])
    return None


def run_arm(arm: str, seed: int, quick: bool, max_env_steps: int | None, work: Path, scripted: dict | None = None) -> dict:
    config = session_config(arm, seed, quick, max_env_steps, scripted)
    root = work / config.name
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    dump_session(config, root / "session.yaml")
    start_s, start_cpu_s = time.monotonic(), children_cpu_s() + time.process_time()
    run, config = prepare_run(root / "session.yaml", root / "run")
    if config.demos.source == "expert" and config.demos.episodes > 0:
        record_expert_demos(config, run.demos, config.demos.episodes, log=lambda *_: None)
    stats = run_training(run, config, quiet=True)
    evals = read_jsonl(run.eval_log)
    reached = steps_to_bar(evals, config)
    result = {"arm": arm, "seed": seed, "steps_to_bar": reached, "reached": reached is not None,
              "env_steps": int(stats["env_steps"]), "stop_reason": stats.get("stop_reason"),
              "evals": [[e["env_steps"], e.get("success_rate")] for e in evals],
              "interventions": stats.get("interventions")}
    if arm == "rlif":
        env, _, policy = load_final_policy(run, config)
        low, high = action_bounds(env)
        final = evaluate_policy(env, lambda o: denormalize_action(policy.act(o, True), low, high),
                                RLIF_EVAL_EPISODES, RLIF_EVAL_SEED)
        env.close()
        result["final_success"] = final["success_rate"]
        result["max_eval_success"] = max((e.get("success_rate") or 0.0) for e in evals) if evals else None
    result["wall_s"] = round(time.monotonic() - start_s, 1)
    result["cpu_s"] = round(children_cpu_s() + time.process_time() - start_cpu_s, 1)
    return result


def summarize(results: list[dict], quick: bool) -> dict:
    def steps(arm):
        # a session that never met the bar counts as its whole budget: the comparison can only get harder
        return [r["steps_to_bar"] if r["reached"] else r["env_steps"] for r in results if r["arm"] == arm]

    with_steps, without_steps = steps("with"), steps("without")
    out = {"bench": "intervention", "task": "robot_rl/PickCube-v0", "quick": quick,
           "steps_with": statistics.median(with_steps) if with_steps else None,
           "steps_without": statistics.median(without_steps) if without_steps else None}
    out["ratio"] = (round(out["steps_with"] / out["steps_without"], 3)
                    if out["steps_with"] and out["steps_without"] else None)
    for arm in ("with", "without", "rlif"):
        mine = [r for r in results if r["arm"] == arm]
        out[f"{arm}_sessions"] = [{k: r.get(k) for k in ("seed", "steps_to_bar", "reached", "env_steps", "wall_s",
                                                          "cpu_s", "final_success", "max_eval_success")
                                   if r.get(k) is not None or k in ("steps_to_bar",)} for r in mine]
        shares = [r["interventions"]["intervened_share"] for r in mine if r.get("interventions")]
        if shares:
            out[f"{arm}_intervened_share"] = [round(s, 3) for s in shares]
    rlif = [r for r in results if r["arm"] == "rlif"]
    if rlif:
        out["rlif_final_success"] = statistics.median(r["final_success"] for r in rlif)
        out["rlif_budget_env_steps"] = max(r["env_steps"] for r in rlif)
    out["wall_s"] = round(sum(r["wall_s"] for r in results), 1)
    out["cpu_s"] = round(sum(r["cpu_s"] for r in results), 1)
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=["with", "without", "rlif"], choices=["with", "without", "rlif"])
    parser.add_argument("--max-env-steps", type=int, help="per-session budget (default: the launch files')")
    parser.add_argument("--results", type=Path, help="JSON lines of finished sessions; rerunning resumes from it")
    parser.add_argument("--work-dir", type=Path, help="run directories (default: a temporary folder, removed)")
    parser.add_argument("--quick", action="store_true", help="a short smoke test of every arm (not a measurement)")
    parser.add_argument("--scripted", nargs="*", default=[], metavar="KEY=VALUE",
                        help="simulated-human settings over the launch file's, e.g. deviation_threshold=1.0 "
                             "session_budget_steps=null")
    args = parser.parse_args(argv)
    scripted = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.scripted)}
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    done = read_jsonl(args.results) if args.results and args.results.exists() else []
    done = [r for r in done if r.get("quick", False) == args.quick and r.get("scripted", {}) == scripted]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench_intervention_"))
    try:
        for seed in args.seeds:  # arms interleaved per seed: a cut-short run stays balanced
            for arm in args.arms:
                if any(r["arm"] == arm and r["seed"] == seed for r in done):
                    continue
                result = {**run_arm(arm, seed, args.quick, args.max_env_steps, work, scripted), "quick": args.quick,
                          "scripted": scripted}
                done.append(result)
                if args.results:
                    with open(args.results, "a") as handle:
                        handle.write(json.dumps(result) + "\n")
                print(f"# {arm} seed {seed}: {result['steps_to_bar']} steps to the bar, {result['wall_s']} s",
                      file=sys.stderr, flush=True)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summarize([r for r in done if r["seed"] in args.seeds and r["arm"] in args.arms], args.quick)))


if __name__ == "__main__":
    main()
