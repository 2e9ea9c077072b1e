"""Sim-to-real transfer: a hover policy trained with vs without system identification, randomization and delay modelling.

All arms are trained by the quadrotor session's trainer (``robot_rl.vectorized.loop.run_training`` with
the recipe of launch/sim_quadrotor_hover.yaml) with the same budget and evaluated on a held-out "real"
variant (REAL_PARAMS: 1.2x mass, 0.85x thrust coefficient, 1.3x motor lag, 1.1x inertia, 30 ms command delay):
- "nominal": the nominal simulator, no delay;
- "robust" (the sim-to-real pipeline): 20 s of the real variant's logged flight (its delay included) go
  through system identification with a delay search (``sim2real.sysid.fit_quadrotor_with_delay``); the
  policy trains on dynamics randomized around the identified model (SYSID_RANDOMIZATION) with a random
  0-40 ms command delay per episode, its actor starting at the identified vehicle's hover command;
- ablations: "robust_no_sysid" (randomized around the nominal model, TRAIN_RANDOMIZATION, 0-40 ms),
  "robust_no_delay", "sysid_only".
With a delay modelled, the actor and the critic see the actions as sent (in-flight ones included).
Training never sees REAL_PARAMS, only the flight log. Each arm keeps the actor of its best periodic
evaluation (``--select-every`` env steps, 200 episodes on the arm's own training distribution).
Reported per arm: success on the nominal simulator, on its own simulator (nominal, or the identified model;
without delay, and behind the identified delay), and on the real variant; drop = own simulator without
delay minus real variant.

Measured (500 episodes each, seeds 0/1/2, 2 shared cores):
- identification: delay 30 ms on every seed (residual 0.0001-0.004 vs >= 0.005 for the other delays),
  thrust-to-weight 0.996/1.0/1.0 of the real one, motor lag 0.993/1.0/1.0 (without the delay search:
  thrust-to-weight 1.097, lag 1.16);
- 900k env steps (the default): nominal 1.0/1.0/1.0 -> 0.0/0.0/0.0 on the real variant; robust 0.894/0.984/0.866 on its own
  simulator -> 0.842/0.904/0.79 on the real variant, drops 5.2/8.0/7.6 points (median 7.6); behind the identified
  30 ms its own simulator predicts 0.804/0.894/0.772, within 4 points of the real variant. Each robust arm
  takes ~240 s of CPU; seeds 0 and 1 keep their 550k/600k snapshots, seed 2 its 650k one;
- 600k env steps: nominal 1.0/1.0/1.0 -> 0.0/0.0/0.0; robust 0.894/0.984/0.904 -> 0.842/0.904/0.782, drops
  5.2/8.0/12.2 (seed 2 kept its 375k snapshot);
- 300k env steps: nominal 1.0/0.986/1.0 -> 0.0/0.0/0.0; robust 0.934/0.058/0.884 -> 0.824/0.058/0.71 (seed 1
  had not learned to hover yet); robust_no_sysid 0.908/0.998/1.0 on the nominal simulator -> 0.0/0.408/0.56:
  randomized around the nominal model, the policy sags 0.26-0.29 m below the target on this heavy, weak
  vehicle (no integral action; 0.0 on mass and thrust alone, 0.953 on the 30 ms delay alone, 0.927 on lag alone).
The 30 ms delay itself costs the robust policy about 9 points in simulation too (own simulator without vs with it:
9.0/9.0/9.4 at 900k).

Prints one JSON line (per seed and medians). Usage:
python bench/sim_to_real.py [--seeds 3] [--env-steps 900000] [--episodes 500] [--arms nominal,robust] [--full-task]
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
from sim2real.quadrotor.params import CRAZYFLIE, CrazyflieParams
from sim2real.quadrotor.task import DomainRandomization
from sim2real.sysid.quadrotor import FITTED, fit_quadrotor_with_delay
from sim2real.sysid.quadrotor_flight import record_flight

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
SYSID_FLIGHT_S = 20.0
# around the identified model the ranges cover what the fit leaves out (inertia is taken as nominal) and
# day-to-day variation, not a whole fleet; TRAIN_RANDOMIZATION's ranges around the weaker identified vehicle
# include draws that barely hover (with them seed 0 learned nothing, 0.0, though its actor then still started at
# the nominal hover command)
SYSID_RANDOMIZATION = DomainRandomization(mass_rel=0.1, thrust_coefficient_rel=0.1, motor_time_constant_rel=0.25,
                                          inertia_rel=0.15)
TRAIN_DELAY_MS = (0.0, 40.0)  # drawn per episode in whole 10 ms steps: 0, 10, 20, 30 or 40 ms
# transfer is measured on hover from disturbed states (tilt <= 30 deg); with the hover task's tumbling starts
# (--full-task, tilt up to 90 deg) the randomized, delayed arm did not learn at 300k steps (0.0 on both, measured)
TRANSFER_TASK = {"init_max_angle_rad": math.radians(30.0), "init_linear_velocity_m_s": 0.5,
                 "init_angular_velocity_rad_s": 0.5}


def real_variant_within_training_range(centre=CRAZYFLIE, randomization=TRAIN_RANDOMIZATION) -> bool:
    """The real variant's dynamics lie inside the range randomized around ``centre`` (and its delay too).

    Judged on what the motion depends on: thrust-to-weight and thrust-to-inertia ratios (mass and thrust
    coefficient are not separately identifiable from flight) and the motor lag.
    """
    r = randomization
    thrust = REAL_PARAMS.thrust_coefficient_n_per_rpm2 / centre.thrust_coefficient_n_per_rpm2
    ratios = {  # real / centre, and the lowest and highest value the randomization draws
        "thrust_to_weight": (thrust * centre.mass_kg / REAL_PARAMS.mass_kg, (1 - r.thrust_coefficient_rel) / (1 + r.mass_rel),
                             (1 + r.thrust_coefficient_rel) / (1 - r.mass_rel)),
        "thrust_to_inertia": (thrust * min(c / real for c, real in zip(centre.inertia_kg_m2, REAL_PARAMS.inertia_kg_m2)),
                              (1 - r.thrust_coefficient_rel) / (1 + r.inertia_rel), (1 + r.thrust_coefficient_rel) / (1 - r.inertia_rel)),
        "motor_lag": (REAL_PARAMS.motor_time_constant_s / centre.motor_time_constant_s, 1 - r.motor_time_constant_rel,
                      1 + r.motor_time_constant_rel),
    }
    inside = all(low <= ratio <= high for ratio, low, high in ratios.values())
    return inside and TRAIN_DELAY_MS[0] <= REAL_DELAY_MS <= TRAIN_DELAY_MS[1]


def identify_real_variant(seed: int) -> tuple[CrazyflieParams, float, dict]:
    """System identification as on hardware, from 20 s of the real variant's logged flight (its 30 ms command
    delay included): the command delay in whole steps, then thrust coefficient, motor lag and mass
    (``sim2real.sysid.fit_quadrotor_with_delay``), started from the nominal model. Returns (params, delay_ms, report)."""
    log = record_flight(REAL_PARAMS, SYSID_FLIGHT_S, seed=seed, action_delay_steps=round(REAL_DELAY_MS / 10.0))
    out = fit_quadrotor_with_delay(log, CRAZYFLIE, max_delay_steps=round(TRAIN_DELAY_MS[1] / 10.0) + 1)
    fitted = out["params"]
    ratios = {name: round(getattr(fitted, name) / getattr(REAL_PARAMS, name), 3) for name in FITTED}
    thrust_to_weight = (fitted.thrust_coefficient_n_per_rpm2 / fitted.mass_kg) / (
        REAL_PARAMS.thrust_coefficient_n_per_rpm2 / REAL_PARAMS.mass_kg)
    delay_ms = 1000.0 * out["delay_s"]
    return fitted, delay_ms, {"fitted_over_real": ratios, "thrust_to_weight_fitted_over_real": round(thrust_to_weight, 3),
                              "delay_ms": delay_ms}


def make_env(num_envs, task, params, delay_ms, seed, autoreset=True):
    """The simulator with `params`, behind an action delay (a fixed one, or a (low, high) range drawn per episode)."""
    env = VecQuadrotorHover(num_envs, task, params, seed=seed, autoreset=autoreset)
    if not np.any(delay_ms):
        return env
    return VecActionDelay(env, delay_ms, control_period_s=task.dt_s, history_columns=ob.HISTORY, seed=seed)


def train(config, task, eval_task, delay_ms, env_steps, max_seconds, select_every, log, params=CRAZYFLIE):
    """The session's trainer (robot_rl.vectorized.loop.run_training) on a randomized, delayed env around ``params``.

    Periodic evaluations fly ``eval_task`` (the training distribution with the evaluated termination) behind
    the same delay range; the best one's actor is kept.
    """
    train_settings = config.train.model_copy(update={
        "max_env_steps": env_steps, "max_seconds": max_seconds, "eval_every_env_steps": select_every,
        "keep_best_policy": bool(select_every), "stop_at_success_rate": None})
    episodes = config.train.eval_episodes

    def on_training_distribution(policy, seed):
        success = evaluate(policy, eval_task, params, delay_ms, episodes, seed)
        return {"success_rate": success, "mean_return": float("nan")}

    td3 = config.td3
    if np.any(delay_ms):  # the critic must see the actions still in flight (the sent history) to stay Markov
        td3 = td3.model_copy(update={"critic_sees_action_history": True})
    config = config.model_copy(update={"train": train_settings, "td3": td3})
    agent, stats = run_training(config, log=log, evaluate=on_training_distribution,
                                env_factory=lambda n, _, seed: make_env(n, task, params, delay_ms, seed), vehicle=params)
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
    parser.add_argument("--env-steps", type=int, default=900_000,
                        help="per arm (at 300k the robust arm may not have learned yet; at 600k seed 2 dropped 12.2 points)")
    parser.add_argument("--max-seconds", type=float, default=1200.0, help="per training run (wall)")
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--select-every", type=int, default=25_000,
                        help="env steps between the periodic evaluations that pick each arm's actor (0: the last actor)")
    parser.add_argument("--arms", default="nominal,robust",
                        help="comma-separated: nominal, robust, robust_no_sysid, robust_no_delay, sysid_only")
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
    near, near_eval = (replace(t, domain_randomization=SYSID_RANDOMIZATION) for t in (train_task, task))
    arms = {  # training task, the same distribution as evaluated (for picking the actor), delay, centre model
        "nominal": (train_task, task, 0.0, "nominal"),
        "robust": (near, near_eval, TRAIN_DELAY_MS, "identified"),  # sysid + randomization + delay
        "robust_no_sysid": (randomized, randomized_eval, TRAIN_DELAY_MS, "nominal"),
        "robust_no_delay": (near, near_eval, 0.0, "identified"),
        "sysid_only": (train_task, task, 0.0, "identified"),
    }
    chosen = args.arms.split(",")
    unknown = sorted(set(chosen) - set(arms))
    if unknown:
        parser.error(f"unknown arm(s) {unknown}: choose from {sorted(arms)}.")
    results, identification = {name: [] for name in chosen}, []
    for seed in range(args.seed, args.seed + args.seeds):
        seeded = config.model_copy(update={"seed": seed})
        # the identified delay is reported, not used to narrow the training range: from scratch, episodes with
        # 20-40 ms delays only did not learn to hover in 300k env steps (seed 0: 0.0); with 0-40 ms they do
        identified, identified_delay_ms, report = identify_real_variant(seed)
        identification.append({"seed": seed, **report,
                               "real_variant_within_training_range": real_variant_within_training_range(identified, SYSID_RANDOMIZATION)})
        log(f"identified from {SYSID_FLIGHT_S:.0f} s of the real variant's flight: {identification[-1]}")
        for name in chosen:
            arm_task, arm_eval_task, delay_ms, centre = arms[name]
            params = identified if centre == "identified" else CRAZYFLIE
            agent, stats = train(seeded, arm_task, arm_eval_task, delay_ms, args.env_steps, args.max_seconds,
                                 args.select_every, log, params)
            policy = actor_policy(agent)
            result = {
                "seed": seed, **stats, "centre": centre,
                "train_delay_ms": list(delay_ms) if isinstance(delay_ms, tuple) else delay_ms,
                "success_nominal_sim": evaluate(policy, task, CRAZYFLIE, 0.0, args.episodes, 10_000 + seed),
                # the simulator the arm was built around (nominal, or the identified model), without delay
                "success_own_sim": evaluate(policy, task, params, 0.0, args.episodes, 10_000 + seed),
                # and behind the identified command delay (the whole identified model; nominal arms: none known)
                "success_own_sim_identified_delay": evaluate(policy, task, params, identified_delay_ms if centre == "identified"
                                                             else 0.0, args.episodes, 10_000 + seed),
                "success_real_variant": evaluate(policy, task, REAL_PARAMS, REAL_DELAY_MS, args.episodes, 10_000 + seed),
            }
            result["drop_points"] = round(100 * (result["success_own_sim"] - result["success_real_variant"]), 1)
            results[name].append(result)
            log(f"{name}: {result}")
    medians = {f"{name}_{key}_median": float(np.median([r[key] for r in runs]))
               for name, runs in results.items()
               for key in ("success_nominal_sim", "success_own_sim", "success_real_variant", "drop_points")}
    print(json.dumps({
        "bench": "sim2real_quadrotor_hover",
        "real_variant": {"mass_kg": REAL_PARAMS.mass_kg, "thrust_coefficient_n_per_rpm2": REAL_PARAMS.thrust_coefficient_n_per_rpm2,
                         "motor_time_constant_s": REAL_PARAMS.motor_time_constant_s,
                         "inertia_kg_m2": list(REAL_PARAMS.inertia_kg_m2), "action_delay_ms": REAL_DELAY_MS},
        "real_variant_within_nominal_training_range": real_variant_within_training_range(),
        "identification": identification,
        "train_randomization": {k: getattr(TRAIN_RANDOMIZATION, k) for k in ("mass_rel", "thrust_coefficient_rel",
                                                                            "motor_time_constant_rel", "inertia_rel")},
        "episodes": args.episodes, "task": "full hover task" if args.full_task else TRANSFER_TASK,
        "seeds": list(range(args.seed, args.seed + args.seeds)), "select_every_env_steps": args.select_every,
        **medians, **results,
    }))


if __name__ == "__main__":
    main()
