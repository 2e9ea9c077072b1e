"""Sim-to-real transfer: a hover policy trained with vs without randomization and delay modelling.

Both policies are trained by the quadrotor session's trainer (``robot_rl.vectorized.loop.run_training``
with the recipe of launch/sim_quadrotor_hover.yaml) and the same budget; "robust" trains on randomized
dynamics (mass, thrust coefficient, motor lag, inertia) and a random action delay of 0-40 ms per
episode, "nominal" on the nominal simulator without delay. Both are evaluated on the nominal
simulator and on a held-out "real" variant: parameters none of the training runs was centred on
(inside the randomized range, checked) and a 30 ms action delay. With the delay modelled, the actor
and the critic see the actions as sent (in-flight ones included), so the policy can compensate.

Each arm keeps the actor of its best periodic evaluation (``--select-every`` env steps, 200 episodes of
the bench's task on the arm's own training distribution: nominal, or randomized with the random delay):
TD3's success swings between evaluations, and picking that way never looks at the real variant. (Picked
on the nominal simulator instead, the robust arm of seed 0 kept a snapshot with 0.736 nominal and 0.0 on
the real variant: what flies the nominal model best need not be what the randomization taught.)

Measured (2 shared cores, 500 episodes each; robust drop = nominal-sim success minus real-variant success):
- 300k env steps, seeds 0/1/2: plain 0.786/0.794/0.954 -> 0.0/0.0/0.0 on the real variant; robust
  0.556/0.958/0.434 -> 0.496/0.506/0.0, drops 6.0/45.2/43.4 points (median 43.4);
- 600k env steps, robust only: 0.87/0.978/1.0 -> 0.38/0.018/0.254, drops 49/96/75 points.
So the plain policy's collapse is reproducible, but randomization and delay modelling do NOT yet keep the
success within 10 points on this variant (1.2x mass with 0.85x thrust sits in a corner of the training box).

Prints one JSON line (per seed and medians). Usage:
python bench/sim_to_real.py [--seeds 3] [--env-steps 300000] [--episodes 500] [--full-task]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace


import numpy as np
import torch

from robot_rl.vectorized.config import load_vector_session
from robot_rl.vectorized.loop import actor_policy, hover_task, run_training
from sim2real.latency import VecActionDelay
from sim2real.quadrotor import observation as ob
from sim2real.quadrotor.env import VecQuadrotorHover
from sim2real.quadrotor.evaluation import evaluate_hover
from sim2real.quadrotor.params import CRAZYFLIE
from sim2real.quadrotor.task import DomainRandomization

CONFIG = "launch/sim_quadrotor_hover.yaml"
REAL_DELAY_MS = 30.0
# the held-out vehicle: heavier, weaker and slower motors, larger inertia than the nominal model
REAL_PARAMS = replace(CRAZYFLIE, mass_kg=CRAZYFLIE.mass_kg * 1.2, thrust_coefficient_n_per_rpm2=CRAZYFLIE.thrust_coefficient_n_per_rpm2 * 0.85,
                      motor_time_constant_s=CRAZYFLIE.motor_time_constant_s * 1.3,
                      inertia_kg_m2=tuple(i * 1.1 for i in CRAZYFLIE.inertia_kg_m2))
# training ranges centred on the nominal model, wide enough to hold the real variant without being fit to it;
# the weakest draw (thrust 0.8 / mass 1.25: thrust/weight 0.64 of nominal) still flies, the real variant's is 0.71
TRAIN_RANDOMIZATION = DomainRandomization(mass_rel=0.25, thrust_coefficient_rel=0.2, motor_time_constant_rel=0.4,
                                          inertia_rel=0.25)
TRAIN_DELAY_MS = (0.0, 40.0)  # drawn per episode in whole 10 ms steps: 0, 10, 20, 30 or 40 ms
# transfer is measured on hover from disturbed states (tilt <= 30 deg); with the hover task's tumbling starts
# (--full-task, tilt up to 90 deg) the randomized, delayed arm did not learn at 300k steps (0.0 on both, measured)
TRANSFER_TASK = {"init_max_angle_rad": math.radians(30.0), "init_linear_velocity_m_s": 0.5,
                 "init_angular_velocity_rad_s": 0.5}


def real_variant_within_training_range() -> bool:
    """Every parameter the real variant changes lies inside the randomized training range (and the delay too)."""
    ratios = {
        "mass_rel": REAL_PARAMS.mass_kg / CRAZYFLIE.mass_kg,
        "thrust_coefficient_rel": REAL_PARAMS.thrust_coefficient_n_per_rpm2 / CRAZYFLIE.thrust_coefficient_n_per_rpm2,
        "motor_time_constant_rel": REAL_PARAMS.motor_time_constant_s / CRAZYFLIE.motor_time_constant_s,
        "inertia_rel": max(r / n for r, n in zip(REAL_PARAMS.inertia_kg_m2, CRAZYFLIE.inertia_kg_m2)),
    }
    inside = all(abs(ratio - 1.0) <= getattr(TRAIN_RANDOMIZATION, name) for name, ratio in ratios.items())
    return inside and TRAIN_DELAY_MS[0] <= REAL_DELAY_MS <= TRAIN_DELAY_MS[1]


def make_env(num_envs, task, params, delay_ms, seed, autoreset=True):
    """The simulator with `params`, behind an action delay (a fixed one, or a (low, high) range drawn per episode)."""
    env = VecQuadrotorHover(num_envs, task, params, seed=seed, autoreset=autoreset)
    if not np.any(delay_ms):
        return env
    return VecActionDelay(env, delay_ms, control_period_s=task.dt_s, history_columns=ob.HISTORY, seed=seed)


def train(config, task, eval_task, delay_ms, env_steps, max_seconds, select_every, log):
    """The session's trainer (robot_rl.vectorized.loop.run_training) on a randomized, delayed env.

    Periodic evaluations fly ``eval_task`` (the training distribution with the evaluated termination) behind
    the same delay range; the best one's actor is kept.
    """
    train_settings = config.train.model_copy(update={
        "max_env_steps": env_steps, "max_seconds": max_seconds, "eval_every_env_steps": select_every,
        "keep_best_policy": bool(select_every), "stop_at_success_rate": None})
    episodes = config.train.eval_episodes

    def on_training_distribution(policy, seed):
        success = evaluate(policy, eval_task, CRAZYFLIE, delay_ms, episodes, seed)
        return {"success_rate": success, "mean_return": float("nan")}

    td3 = config.td3
    if np.any(delay_ms):  # the critic must see the actions still in flight (the sent history) to stay Markov
        td3 = td3.model_copy(update={"critic_sees_action_history": True})
    config = config.model_copy(update={"train": train_settings, "td3": td3})
    agent, stats = run_training(config, log=log, evaluate=on_training_distribution,
                                env_factory=lambda n, _, seed: make_env(n, task, CRAZYFLIE, delay_ms, seed))
    log(f"trained {stats['env_steps']} env steps in {stats['wall_s']:.0f} s (delay {delay_ms} ms, "
        f"randomization {task.domain_randomization})")
    selected = stats["restored_best_eval"] or (stats["periodic_evals"] or [{}])[-1]
    return agent, {"env_steps": stats["env_steps"], "wall_s": round(stats["wall_s"], 1), "cpu_s": round(stats["cpu_s"], 1),
                   "selected_at_env_steps": selected.get("env_steps"), "selection_success": selected.get("success_rate")}


def evaluate(policy, task, params, delay_ms, episodes, seed):
    """Hover success (sim2real.quadrotor.evaluation's rule) with `params` behind the action delay."""
    env = make_env(episodes, task, params, delay_ms, seed, autoreset=False)
    return round(evaluate_hover(policy, task, episodes, seed, env=env)["success_rate"], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-steps", type=int, default=300_000)
    parser.add_argument("--max-seconds", type=float, default=1200.0, help="per training run (wall)")
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--select-every", type=int, default=25_000,
                        help="env steps between the periodic evaluations that pick each arm's actor (0: the last actor)")
    parser.add_argument("--arms", default="nominal,robust",
                        help="comma-separated: nominal, robust, randomized_only (no delay), delay_only")
    parser.add_argument("--full-task", action="store_true", help="the hover session's initial states (tilt up to 90 deg)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    log = (lambda *_: None) if args.quiet else (lambda msg: print(f"[sim2real] {msg}", flush=True, file=sys.stderr))

    config = load_vector_session(CONFIG)
    if not args.full_task:  # the periodic (selection) evaluations fly the bench's task too
        config = config.model_copy(update={"env_kwargs": {**config.env_kwargs, **TRANSFER_TASK}})
    task, train_task = hover_task(config), hover_task(config, training=True)
    randomized, randomized_eval = (replace(t, domain_randomization=TRAIN_RANDOMIZATION) for t in (train_task, task))
    arms = {  # training task, the same distribution as evaluated (for picking the actor), delay
        "nominal": (train_task, task, 0.0),
        "robust": (randomized, randomized_eval, TRAIN_DELAY_MS),
        "randomized_only": (randomized, randomized_eval, 0.0),
        "delay_only": (train_task, task, TRAIN_DELAY_MS),
    }
    chosen = args.arms.split(",")
    unknown = sorted(set(chosen) - set(arms))
    if unknown:
        parser.error(f"unknown arm(s) {unknown}: choose from {sorted(arms)}.")
    results = {name: [] for name in chosen}
    for seed in range(args.seed, args.seed + args.seeds):
        seeded = config.model_copy(update={"seed": seed})
        for name in chosen:
            arm_task, arm_eval_task, delay_ms = arms[name]
            agent, stats = train(seeded, arm_task, arm_eval_task, delay_ms, args.env_steps, args.max_seconds,
                                 args.select_every, log)
            policy = actor_policy(agent)
            result = {
                "seed": seed, **stats,
                "train_delay_ms": list(delay_ms) if isinstance(delay_ms, tuple) else delay_ms,
                "success_nominal_sim": evaluate(policy, task, CRAZYFLIE, 0.0, args.episodes, 10_000 + seed),
                "success_real_variant": evaluate(policy, task, REAL_PARAMS, REAL_DELAY_MS, args.episodes, 10_000 + seed),
            }
            result["drop_points"] = round(100 * (result["success_nominal_sim"] - result["success_real_variant"]), 1)
            results[name].append(result)
            log(f"{name}: {result}")
    medians = {f"{name}_{key}_median": float(np.median([r[key] for r in runs]))
               for name, runs in results.items() for key in ("success_nominal_sim", "success_real_variant", "drop_points")}
    print(json.dumps({
        "bench": "sim2real_quadrotor_hover",
        "real_variant": {"mass_kg": REAL_PARAMS.mass_kg, "thrust_coefficient_n_per_rpm2": REAL_PARAMS.thrust_coefficient_n_per_rpm2,
                         "motor_time_constant_s": REAL_PARAMS.motor_time_constant_s,
                         "inertia_kg_m2": list(REAL_PARAMS.inertia_kg_m2), "action_delay_ms": REAL_DELAY_MS},
        "real_variant_within_training_range": real_variant_within_training_range(),
        "train_randomization": {k: getattr(TRAIN_RANDOMIZATION, k) for k in ("mass_rel", "thrust_coefficient_rel",
                                                                            "motor_time_constant_rel", "inertia_rel")},
        "episodes": args.episodes, "task": "full hover task" if args.full_task else TRANSFER_TASK,
        "seeds": list(range(args.seed, args.seed + args.seeds)), "select_every_env_steps": args.select_every,
        **medians, **results,
    }))


if __name__ == "__main__":
    main()
