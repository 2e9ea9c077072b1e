"""Residual RL on a weakened BC base vs the same SAC network from scratch, pick-cube (state).

1. Record expert demos, train a BC base on only a few of them (``--base-demos``), export it to
   ONNX and evaluate it: ``base_success``. Pick-cube is easy to clone: BC on 5 demos reaches
   0.94-1.0 success (measured, 50 episodes), so the weakened base learns from 2 (BC seed 1: 0.14).
   alpha: a residual that greedily moves the action toward the expert's, bounded by alpha, lifts
   this base to 0.53 / 0.80 / 0.90 / 0.97 success at alpha 0.1 / 0.2 / 0.3 / 0.5 (measured,
   30 episodes), so alpha 0.1 (the session default) cannot reach 0.9 on it; the bench uses 0.5.
2. Per seed, train SAC in-process (the learner's SACAgent, ReplayBuffer and RLPD 50/50 sampling,
   with the learner's update rule ``updates < utd * (env_steps - warmup + 1)``; no ZeroMQ and no
   processes, so the figures are about learning, not transport):
   - residual: the session's residual wrapper around the BC export, alpha 0.5, warmup 0 (the
     base drives from the first step), the demos recorded in the wrapped env;
   - scratch: the same network and settings without a base (warmup 500 random steps, as
     launch/sim_pick_cube.yaml).
   Both use the same expert demos in the demo half of each batch. Deterministic evaluation
   every ``--eval-every`` env steps (20 episodes); steps to 0.8 = first evaluation at >= 0.8
   success. Each run trains its whole budget (``--stop-at`` ends it earlier), then
   ``*_success`` is a 50-episode evaluation on unseen seeds. Stopping at the first two
   evaluations >= 0.9 was measured to stop too early: 0.76-0.88 on the final evaluation.
3. Prints one JSON line: medians over seeds and the per-seed figures (progress on stderr).

Run: ``.venv/bin/python bench/residual.py`` (3 seeds) or ``--quick`` (smoke test, 1 seed, tiny budgets).

Measured (2026-11-21, one arm or seed per call with ``--arms``/``--first-seed``/``--seeds 1``; the base
reached 0.14): residual (8000-step budget) 0.8 success at 4500 / 5000 / 5000 env steps (median 5000),
final 1.00 / 0.94 / 0.98 (median 0.98); scratch 0.8 at 8000 / 9000 / 9500 (median 9000; seeds 1-2 with
``--stop-at 0.8``: 322 s CPU / 606 s wall and 275 s CPU / 280 s wall for 10500 and 10000 env steps).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from policies.bc import BCSettings, train_bc
from policies.export.onnx_export import OnnxPolicy, export_onnx
from policies.export.spec import build_export_spec
from robot_rl.actor import evaluate_policy
from robot_rl.config import load_session, session_from_dict
from robot_rl.envs import action_bounds, control_hz, denormalize_action, make_env
from robot_rl.episodes import episode_paths, load_episodes_into, read_episode
from robot_rl.replay import ReplayBuffer, sample_mixed
from robot_rl.sac import SACAgent, batch_to_torch
from robot_rl.session import record_expert_demos
from robot_rl.spaces import flatten_obs, obs_spec_from_space

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "sim_pick_cube.yaml"
EVAL_SEED = 20_000_000  # evaluation episodes use seeds no training episode uses


def session(base: str | None, seed: int, ramp_steps: int, alpha: float, demos: int):
    data = load_session(LAUNCH).model_dump(mode="json")
    data.update(name="residual" if base else "scratch", seed=seed)
    data["demos"]["episodes"] = demos
    if base is not None:
        data["residual"] = {"base": base, "alpha": alpha, "ramp_steps": ramp_steps}
        data["learner"]["warmup_steps"] = 0  # the base drives from the first step: random actions would undo it
        data["train"]["max_actor_lead_steps"] = data["learner"]["batch_size"]  # sessions only; the loop here has no actor
    return session_from_dict(data, "bench/residual.py")


def train_base(work: Path, base_demos: int, bc_steps: int, bc_seed: int, eval_episodes: int) -> tuple[str, float]:
    config = session(None, 0, 0, 0.0, base_demos)
    demo_dir = work / "base_demos"
    record_expert_demos(config, demo_dir, base_demos, log=lambda *a: None)
    episodes = [read_episode(p) for p in episode_paths(demo_dir)]
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    policy, _ = train_bc(episodes, spec, low, high, BCSettings(steps=bc_steps, seed=bc_seed))
    export_spec = build_export_spec(env, spec, control_hz=control_hz(env, config), env_id=config.env,
                                    env_kwargs=config.env_kwargs, session="bench_residual_base", training_run=work)
    parity = {k[len("obs/"):]: v for k, v in episodes[0].items() if k.startswith("obs/")}
    path = export_onnx(policy, export_spec, work / "bc_base.onnx", parity)["path"]
    success = evaluate_policy(env, OnnxPolicy(path), eval_episodes, EVAL_SEED)["success_rate"]
    env.close()
    return path, float(success)


def train_sac(config, demo_dir: Path, max_steps: int, eval_every: int, eval_episodes: int, stop_at: float) -> dict:
    """In-process RLPD SAC on ``config``; returns the eval curve and steps to 0.8 success."""
    cfg = config.learner
    record_expert_demos(config, demo_dir, config.demos.episodes, log=lambda *a: None)
    env, eval_env = make_env(config), make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    agent = SACAgent(spec, len(low), cfg, low, high, seed=config.seed)
    online = ReplayBuffer(spec, len(low), max_steps + 10, seed=config.seed)
    demos = ReplayBuffer(spec, len(low), 10_000, seed=config.seed + 7)
    load_episodes_into(demos, demo_dir, spec)
    rng = np.random.default_rng(config.seed + 1000)

    def act(obs, deterministic):
        with torch.no_grad():
            features = agent.encoder({k: torch.from_numpy(v)[None] for k, v in obs.items()})
            action = agent.actor.deterministic(features) if deterministic else agent.actor.sample(features)[0]
        return action[0].numpy()

    curve, steps_to_0_8, at_bar = [], None, 0
    episode, steps, start = 0, 0, time.monotonic()
    while steps < max_steps:
        obs = flatten_obs(spec, env.reset(seed=config.seed + episode)[0])
        episode_start = True
        while steps < max_steps:
            action = rng.uniform(-1, 1, len(low)).astype(np.float32) if steps < cfg.warmup_steps else act(obs, False)
            raw, reward, terminated, truncated, _ = env.step(denormalize_action(action, low, high))
            next_obs = flatten_obs(spec, raw)
            online.add(obs, action, reward, terminated, truncated, next_obs, episode_start)
            obs, episode_start, steps = next_obs, False, steps + 1
            if len(online) >= cfg.batch_size and steps >= cfg.warmup_steps:
                while agent.updates < cfg.utd * (steps - cfg.warmup_steps + 1):
                    agent.update(batch_to_torch(sample_mixed(online, demos, cfg.batch_size, cfg.demo_ratio)),
                                 update_actor=agent.updates % cfg.actor_update_every == 0)
            if steps % eval_every == 0:
                policy_fn = lambda o: denormalize_action(act(o, True), low, high)  # noqa: E731
                success = evaluate_policy(eval_env, policy_fn, eval_episodes, EVAL_SEED)["success_rate"]
                curve.append([steps, success])
                print(f"  {config.name} seed {config.seed}: {steps} env steps, success {success:.2f}, "
                      f"{time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
                if steps_to_0_8 is None and success >= 0.8:
                    steps_to_0_8 = steps
                at_bar = at_bar + 1 if success >= stop_at else 0
                if at_bar >= 2:
                    break
            if terminated or truncated:
                break
        episode += 1
        if at_bar >= 2:
            break
    policy_fn = lambda o: denormalize_action(act(o, True), low, high)  # noqa: E731
    final = evaluate_policy(eval_env, policy_fn, 50, EVAL_SEED + 1000)["success_rate"]
    env.close()
    eval_env.close()
    return {"env_steps": steps, "steps_to_0_8": steps_to_0_8, "final_success": final, "curve": curve,
            "wall_s": round(time.monotonic() - start, 1)}


def median_steps(values: list[int | None], budget: int) -> float | None:
    """Median with a run that never reached the bar counted as beyond its budget (None when the median is such a run)."""
    ranked = sorted(budget + 1 if v is None else v for v in values)
    middle = statistics.median(ranked)
    return None if middle > budget else float(middle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 seed, tiny budgets")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--base-demos", type=int, default=2, help="demos the weakened BC base learns from")
    parser.add_argument("--bc-steps", type=int, default=1000)
    parser.add_argument("--bc-seed", type=int, default=1)
    parser.add_argument("--rl-demos", type=int, default=5, help="expert demos in the RLPD demo half, both arms")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--ramp-steps", type=int, default=500)
    parser.add_argument("--residual-steps", type=int, default=8000)
    parser.add_argument("--scratch-steps", type=int, default=12000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--arms", default="residual,scratch")
    parser.add_argument("--stop-at", type=float, default=1.1,
                        help="end a run after two evaluations at this success (above 1: train the whole budget)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.residual_steps, args.scratch_steps, args.eval_every, args.eval_episodes = 1, 400, 400, 200, 5
    torch.set_num_threads(1)
    wall, cpu = time.monotonic(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base_path, base_success = train_base(work, args.base_demos, args.bc_steps, args.bc_seed, 50)
        runs = {"residual": [], "scratch": []}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for arm in args.arms.split(","):
                base = base_path if arm == "residual" else None
                config = session(base, seed, args.ramp_steps, args.alpha, args.rl_demos)
                budget = args.residual_steps if arm == "residual" else args.scratch_steps
                result = train_sac(config, work / f"{arm}_demos_{seed}", budget, args.eval_every, args.eval_episodes,
                                   args.stop_at)
                runs[arm].append({"seed": seed, **result})
                print(f"{arm} seed {seed}: {json.dumps(result)}", file=sys.stderr, flush=True)
    residual, scratch = runs["residual"], runs["scratch"]
    out = {
        "bench": "residual", "task": "robot_rl/PickCube-v0", "seeds": args.seeds, "quick": args.quick,
        "base_demos": args.base_demos, "rl_demos": args.rl_demos, "alpha": args.alpha, "ramp_steps": args.ramp_steps,
        "base_success": base_success,
        "residual_success": statistics.median(r["final_success"] for r in residual) if residual else None,
        "scratch_success": statistics.median(r["final_success"] for r in scratch) if scratch else None,
        "steps_to_0_8_residual": median_steps([r["steps_to_0_8"] for r in residual], args.residual_steps) if residual else None,
        "steps_to_0_8_scratch": median_steps([r["steps_to_0_8"] for r in scratch], args.scratch_steps) if scratch else None,
        "residual_budget_steps": args.residual_steps, "scratch_budget_steps": args.scratch_steps,
        "runs": runs, "wall_s": round(time.monotonic() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
