"""World-model policy: CPU-preset planning rate and decision latency, and env steps to pick-cube's success bar.

Planning: the CPU preset's planner with the session file's planner overrides, on pick-cube observations
(an expert rollout's states), one torch thread, wall clock on this machine as it is loaded at the time (``load_avg_1m``):
``plan_hz`` full plans (every MPPI iteration) per second, ``plan_hz_cpu_time`` the same per second
of CPU time (what an unloaded core gives); with the time budget on (the preset's 40 ms):
``decision_p50_ms``/``decision_p99_ms`` and the share of decisions that planned fully, planned
fewer iterations (``truncated_share``) or fell back to the policy prior (``prior_share``). The model is freshly initialized unless
``--weights RUN/checkpoints/final_world_model.safetensors`` is given (timing does not depend on
weights, the paths taken by the budget do not either).

Learning: env steps until two consecutive periodic evaluations (every 1000 env steps, 20 episodes)
reach 0.95 success, the bar of launch/sim_pick_cube.yaml, for
- the world model: ``robot_rl.world_model_trainer.run_training`` with launch/sim_pick_cube_world_model.yaml;
- SAC: an in-process loop over ``robot_rl.sac.SACAgent`` + ``ReplayBuffer`` with launch/sim_pick_cube.yaml's
  settings (500 random warm-up steps, UTD 2, 50/50 demo batches, the same 20 expert demos). It has no
  actor/learner processes, so no policy lag: the idealized version of that session.
The world model's periodic evaluations also run its policy prior alone (``steps_to_bar_wm_prior``).
Each (learner, seed) result is kept in ``--results-dir`` as it finishes, so a later call resumes;
``--cached-only`` reports what is kept there without running anything.
``--quick`` is a smoke run (few decisions, 300 env steps, no bar reached). Prints one JSON line.

Measured (``bench/world_model.py --results-dir DIR``, seeds 0-2, 2026-11-21, load 2.7-5 from other runs):
``steps_to_bar_wm`` 2000 (2000 / 2000 / 2000: the second evaluation, the earliest possible; the prior alone
also 2000), ``steps_to_bar_sac`` 8000 (9000 / 7000 / 8000); world model 231-234 s CPU per seed, SAC
188-279 s. ``plan_hz`` 30.8 (63.7 per CPU-second), ``decision_p99_ms`` 39.4 with the 40 ms budget (93% of
decisions planned all 3 iterations). TD-MPC2's 5M model and planner on this CPU: 1.3 s per decision.
The planner searches around its prior's plan with a narrow spread (launch file: ``center_on_prior``,
``max_std`` 0.1); TD-MPC2's warm-started search (max_std 0.5) planned worse than its own prior
(0.2-0.55 success against the prior's 0.95-1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WM_SESSION = ROOT / "launch" / "sim_pick_cube_world_model.yaml"
SAC_SESSION = ROOT / "launch" / "sim_pick_cube.yaml"


# ----- planning rate ----------------------------------------------------------------------
def expert_states(count: int, seed: int = 0) -> np.ndarray:
    from robot_rl.config import load_session
    from robot_rl.envs import make_env, make_expert
    from robot_rl.spaces import flatten_obs, obs_spec_from_space

    env = make_env(load_session(SAC_SESSION))
    spec, expert, states = obs_spec_from_space(env.observation_space), make_expert(env), []
    raw, _ = env.reset(seed=seed)
    while len(states) < count:
        states.append(flatten_obs(spec, raw)["state"])
        raw, _, terminated, truncated, _ = env.step(expert.act(raw))
        if terminated or truncated:
            raw, _ = env.reset(seed=seed + len(states))
    env.close()
    return np.stack(states)


def planning_figures(decisions: int, weights: str | None) -> dict:
    from policies.world_model.model import WorldModel
    from policies.world_model.planner import MPPIPlanner
    from robot_rl.world_model_trainer import decision_figures, load_world_model_session

    model_settings, planner_settings = load_world_model_session(WM_SESSION).settings()  # the cpu preset as launched
    states = expert_states(decisions)
    model = WorldModel(states.shape[1], 4, model_settings).eval()
    if weights:
        import safetensors.torch

        model.load_state_dict(safetensors.torch.load(Path(weights).read_bytes()))
    out = {"cpu_preset_parameters": model.num_parameters(), "time_budget_ms": planner_settings.time_budget_ms,
           "num_samples": planner_settings.num_samples, "iterations": planner_settings.iterations,
           "decisions": len(states)}
    runs = {}
    for label, budget in (("budget", planner_settings.time_budget_ms), ("full", None)):
        planner = MPPIPlanner(model, planner_settings.model_copy(update={"time_budget_ms": budget}), 0.97)
        planner.calibrate(states[0])
        cpu = time.process_time()
        made = [planner.plan(state) for state in states]
        runs[label] = {**decision_figures(made), "cpu_ms": (time.process_time() - cpu) * 1e3 / len(made)}
    full, budgeted = runs["full"], runs["budget"]
    out.update({
        # full plans (every iteration), wall clock on this machine as loaded now, and per CPU-second
        "plan_hz": full["decision_hz"], "plan_hz_cpu_time": round(1e3 / full["cpu_ms"], 1),
        "full_plan_p50_ms": full["decision_p50_ms"], "full_plan_p99_ms": full["decision_p99_ms"],
        # the time budget on: what a robot gets, and which path each decision took
        "decision_p50_ms": budgeted["decision_p50_ms"], "decision_p99_ms": budgeted["decision_p99_ms"],
        "decision_hz": budgeted["decision_hz"], "mean_iterations": budgeted["mean_iterations"],
        "planned_share": budgeted["planned_share"], "truncated_share": budgeted["truncated_share"],
        "prior_share": budgeted["prior_share"],
    })
    return out


def default_size_figures(decisions: int) -> dict:
    """TD-MPC2's default size and planner (the gpu preset), unbudgeted, on this CPU: why the cpu preset exists."""
    from policies.world_model.model import WorldModel
    from policies.world_model.planner import MPPIPlanner
    from policies.world_model.presets import preset

    model_settings, planner_settings = preset("gpu")
    model = WorldModel(13, 4, model_settings).eval()
    planner = MPPIPlanner(model, planner_settings.model_copy(update={"time_budget_ms": None}), 0.97)
    state = expert_states(1)[0]
    planner.plan(state)
    elapsed = [planner.plan(state).elapsed_ms for _ in range(decisions)]
    return {"gpu_preset_parameters": model.num_parameters(), "gpu_preset_on_cpu_decision_ms": round(float(np.median(elapsed)), 1)}


# ----- learning ---------------------------------------------------------------------------
def progress(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)  # stdout holds only the JSON line


def record_demos(session, directory: Path) -> None:
    from robot_rl.session import record_expert_demos

    record_expert_demos(session, directory, session.demos.episodes, log=lambda *_: None)


def wm_steps_to_bar(seed: int, max_env_steps: int, eval_every: int, eval_episodes: int, workdir: Path) -> dict:
    from robot_rl.world_model_trainer import load_world_model_session, run_training

    config = load_world_model_session(WM_SESSION)
    train = config.train.model_copy(update={"max_env_steps": max_env_steps, "eval_every_env_steps": eval_every,
                                            "eval_episodes": eval_episodes, "max_minutes": 90.0})
    config = config.model_copy(update={"seed": seed, "train": train})
    demos = workdir / f"demos_seed{seed}"
    record_demos(config.session(), demos)
    _, _, stats = run_training(config, None, demos, log=progress)
    return {"steps_to_bar": stats["steps_to_bar"], "steps_to_bar_prior": stats["steps_to_bar_prior"],
            "env_steps": stats["env_steps"], "wall_s": round(stats["wall_s"], 1),
            "cpu_s": round(stats["cpu_s"], 1), "updates": stats["learner_updates"],
            "evals": [(e["env_steps"], e["success_rate"], e["prior_success_rate"]) for e in stats["periodic_evals"]]}


def sac_steps_to_bar(seed: int, max_env_steps: int, eval_every: int, eval_episodes: int, workdir: Path) -> dict:
    from robot_rl.config import load_session
    from robot_rl.envs import action_bounds, denormalize_action, make_env
    from robot_rl.episodes import load_episodes_into
    from robot_rl.replay import ReplayBuffer, sample_mixed
    from robot_rl.sac import SACAgent, batch_to_torch
    from robot_rl.spaces import flatten_obs, obs_spec_from_space
    from robot_rl.world_model_trainer import PERIODIC_EVAL_SEED, evaluate

    config = load_session(SAC_SESSION)
    config = config.model_copy(update={"seed": seed})
    cfg, bar = config.learner, config.train.stop_at_success_rate
    demos_dir = workdir / f"demos_seed{seed}"
    record_demos(config, demos_dir)
    env, eval_env = make_env(config), make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    agent = SACAgent(spec, len(low), cfg, low, high, seed=seed)
    online = ReplayBuffer(spec, len(low), cfg.replay_capacity, seed=seed)
    demos = ReplayBuffer(spec, len(low), cfg.replay_capacity, seed=seed + 1)
    load_episodes_into(demos, demos_dir, spec)
    rng = np.random.default_rng(seed + 1000)
    start, cpu = time.monotonic(), time.process_time()

    @torch.no_grad()
    def act(obs, deterministic):
        features = agent.encoder({k: torch.from_numpy(v).unsqueeze(0) for k, v in obs.items()})
        action = agent.actor.deterministic(features) if deterministic else agent.actor.sample(features)[0]
        return action[0].numpy()

    env_steps, episode, evals, at_bar, steps_to_bar = 0, 0, [], 0, None
    while env_steps < max_env_steps and steps_to_bar is None:
        raw, _ = env.reset(seed=seed + episode)
        obs, first = flatten_obs(spec, raw), True
        episode += 1
        while env_steps < max_env_steps and steps_to_bar is None:
            action = rng.uniform(-1, 1, len(low)).astype(np.float32) if env_steps < cfg.warmup_steps else act(obs, False)
            raw, reward, terminated, truncated, _ = env.step(denormalize_action(action, low, high))
            next_obs = flatten_obs(spec, raw)
            online.add(obs, action, reward, terminated, truncated, next_obs, episode_start=first)
            obs, first = next_obs, False
            env_steps += 1
            if len(online) >= cfg.batch_size and env_steps >= cfg.warmup_steps:
                while agent.updates < cfg.utd * (env_steps - cfg.warmup_steps + 1):  # as robot_rl.learner
                    agent.update(batch_to_torch(sample_mixed(online, demos, cfg.batch_size, cfg.demo_ratio)),
                                 update_actor=agent.updates % cfg.actor_update_every == 0)
            if env_steps % eval_every == 0:
                result = evaluate(eval_env, lambda o: act(o, True), eval_episodes, PERIODIC_EVAL_SEED + env_steps)
                evals.append((env_steps, result["success_rate"]))
                progress(f"sac seed {seed}: env steps {env_steps}: success {result['success_rate']:.2f} "
                         f"({time.monotonic() - start:.0f} s)")
                at_bar = at_bar + 1 if result["success_rate"] >= bar else 0
                if at_bar >= config.train.stop_after_evals_at_bar:
                    steps_to_bar = env_steps
            if terminated or truncated:
                break
    env.close()
    eval_env.close()
    return {"steps_to_bar": steps_to_bar, "env_steps": env_steps, "wall_s": round(time.monotonic() - start, 1),
            "cpu_s": round(time.process_time() - cpu, 1), "updates": agent.updates, "evals": evals}


def median_steps(results: list[dict]) -> float | None:
    """Median over seeds; a seed that never reached the bar counts as infinitely many steps."""
    if not results:
        return None
    steps = sorted(r["steps_to_bar"] if r["steps_to_bar"] is not None else float("inf") for r in results)
    median = float(np.median(steps))
    return None if not np.isfinite(median) else median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few decisions, 300 env steps per learner")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--learners", nargs="*", default=["wm", "sac"], choices=["wm", "sac"])
    parser.add_argument("--no-learning", action="store_true", help="planning figures only")
    parser.add_argument("--decisions", type=int, default=400)
    parser.add_argument("--weights", help="world-model safetensors to time instead of a fresh model")
    parser.add_argument("--results-dir", default=None, help="keeps each (learner, seed) result; default: a temp dir")
    parser.add_argument("--cached-only", action="store_true", help="report the results kept in --results-dir, run none")
    parser.add_argument("--max-env-steps", type=int, default=20_000, help="per learning run")
    args = parser.parse_args()
    torch.set_num_threads(1)

    decisions = 60 if args.quick else args.decisions
    out = {"bench": "world_model", "quick": args.quick, **planning_figures(decisions, args.weights),
           **default_size_figures(2 if args.quick else 5)}
    if not args.no_learning:
        results_dir = Path(args.results_dir or tempfile.mkdtemp(prefix="wm_bench_"))
        results_dir.mkdir(parents=True, exist_ok=True)
        max_steps, eval_every, eval_episodes = (300, 100, 2) if args.quick else (args.max_env_steps, 1000, 20)
        runners = {"wm": wm_steps_to_bar, "sac": sac_steps_to_bar}
        for learner in args.learners:
            results = []
            for seed in args.seeds:
                path = results_dir / f"{learner}_seed{seed}{'_quick' if args.quick else ''}.json"
                if not path.exists() and args.cached_only:
                    continue
                if not path.exists():
                    path.write_text(json.dumps(runners[learner](seed, max_steps, eval_every, eval_episodes, results_dir)))
                results.append({"seed": seed, **json.loads(path.read_text())})
            out[f"steps_to_bar_{learner}"] = median_steps(results)
            out[f"steps_to_bar_{learner}_per_seed"] = [r["steps_to_bar"] for r in results]
            if learner == "wm":  # the policy prior alone, evaluated beside the planner
                out["steps_to_bar_wm_prior"] = median_steps([{"steps_to_bar": r["steps_to_bar_prior"]} for r in results])
                out["steps_to_bar_wm_prior_per_seed"] = [r["steps_to_bar_prior"] for r in results]
            out[f"{learner}_env_steps_run_per_seed"] = [r["env_steps"] for r in results]
            out[f"{learner}_evals_per_seed"] = [r["evals"] for r in results]
            out[f"{learner}_wall_s_per_seed"] = [r["wall_s"] for r in results]
            out[f"{learner}_cpu_s_per_seed"] = [r["cpu_s"] for r in results]
            out[f"{learner}_seeds"] = [r["seed"] for r in results]
    out["load_avg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
