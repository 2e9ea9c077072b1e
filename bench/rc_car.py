"""RC car (FastRLAP task) simulator throughput and reference lap times; one JSON line.

Measured: env steps/s of ``RCCarRaceEnv`` with camera (64×64) and state-only, car-steps/s of
``VecRCCar`` (256 cars, physics + camera), simulated seconds per wall second, the slow demo lap
and the fast pure-pursuit expert's best lap per track (the 1.3× bar is 1.3 × that lap).

``--tune TRACK`` grid-searches the fast expert instead and prints the best settings.
``--learn`` adds the learning figures, median of 3 seeds: in-process RLPD SAC (``robot_rl.sac``)
on the state-only task from one slow scripted demo lap; wall and simulated time (recoveries
included) to the first completed lap and to a lap within 1.3x of the fast expert's best
(``lap_time_ratio`` = that lap / expert best, practice laps with the stochastic policy).
``--session`` runs ``robot-rl train launch/sim_rc_car_state.yaml`` instead (learner and actor
processes, one seed per ``--seeds``) and prints the report's lap figures: env steps, actor wall
seconds and simulated seconds to the first training lap and to the first within 1.3x, the final
deterministic evaluation's lap times and ratio, training wall time and simulated driving time.
``--session --config launch/sim_rc_car_camera.yaml`` does the same for the camera session (frozen
pretrained encoder, 10 critics, UTD 8; the encoder is pretrained inside each session first) and
adds the encoder's pretraining wall time, held-out error and the embedding env's steps/s; keys
``wall_s_to_first_lap`` / ``sim_s_to_first_lap`` / ``wall_s_to_1p3_bar`` / ``sim_s_to_1p3_bar`` are
the training milestones, ``lap_time_ratio`` the final deterministic evaluation's best lap / expert best.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small shared machine: no BLAS thread pools

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robot_rl.config import LearnerConfig
from robot_rl.replay import ReplayBuffer, sample_mixed
from robot_rl.sac import SACAgent, batch_to_torch
from robot_rl.spaces import flatten_obs, obs_spec_from_space
from sim2real.rc_car.env import RCCarRaceEnv, VecRCCar
from sim2real.rc_car.expert import PurePursuit, PursuitTuning, RCCarExpert
from sim2real.rc_car.track import TRACKS


def _env_rate_of(env, expert, seconds: float = 1.5) -> float:
    """Env steps per second of wall time, driven by ``expert``."""
    obs, _ = env.reset(seed=0)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        obs, _, _, truncated, _ = env.step(expert.act(obs))
        steps += 1
        if truncated:
            obs, _ = env.reset()
    return steps / (time.perf_counter() - start)


def _env_rate(obs_mode: str, seconds: float = 1.5) -> float:
    env = RCCarRaceEnv(obs_mode=obs_mode)
    return _env_rate_of(env, RCCarExpert(env, "fast"), seconds)


def _vec_rate(n: int = 256, seconds: float = 1.5) -> float:
    vec = VecRCCar(n)
    vec.reset()
    actions = np.tile([0.3, 0.0], (n, 1))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        vec.step(actions)
        steps += 1
    return n * steps / (time.perf_counter() - start)


def expert_laps(track: str, mode: str, steps: int = 400, tuning: PursuitTuning | None = None) -> tuple[list[float], int]:
    env = RCCarRaceEnv(track=track, obs_mode="state", max_episode_steps=steps)
    expert = RCCarExpert(env, mode)
    if tuning is not None:
        expert.driver = PurePursuit(env.track, env.car_params, tuning)
    obs, _ = env.reset(seed=0)
    laps, recoveries = [], 0
    for _ in range(steps):
        obs, _, _, _, info = env.step(expert.act(obs))
        recoveries += bool(info["recovery"])
        if "lap_time_s" in info:
            laps.append(float(info["lap_time_s"]))
    return laps, recoveries


def tune(track: str) -> dict:
    """Fastest flying lap with no recovery over a grid of pure-pursuit settings."""
    best = None
    for a_lat, lookahead, gain, preview, brake in itertools.product(
            (3, 4, 5, 6, 7), (0.4, 0.6, 0.8), (0.1, 0.2, 0.3), (0.3, 0.5), (4, 6)):
        tuning = PursuitTuning(lookahead_m=lookahead, lookahead_gain_s=gain, lateral_accel_m_s2=a_lat,
                               brake_m_s2=brake, speed_preview_s=preview)
        laps, recoveries = expert_laps(track, "fast", 350, tuning)
        if recoveries == 0 and len(laps) >= 2 and (best is None or min(laps[1:]) < best[0]):
            best = (min(laps[1:]), tuning)
    return {"track": track, "best_lap_s": best and best[0], "tuning": best and best[1].__dict__}


def learn(seed: int, expert_best_s: float, num_critics: int = 2, utd: int = 2, max_minutes: float = 15.0) -> dict:
    """Practice from one slow demo lap until a lap is within 1.3x of the expert's best."""
    torch.set_num_threads(1)
    env = RCCarRaceEnv(obs_mode="state", max_episode_steps=600)
    spec = obs_spec_from_space(env.observation_space)
    config = LearnerConfig(num_critics=num_critics, utd=utd, warmup_steps=500, discount=0.97)
    agent, rng = SACAgent(spec, 2, config, seed=seed), np.random.default_rng(seed)
    demos, online = ReplayBuffer(spec, 2, 1000, seed), ReplayBuffer(spec, 2, 100_000, seed)
    expert = RCCarExpert(env, "slow")
    obs, _ = env.reset(seed=0)
    for t in range(env.max_episode_steps):
        action = expert.act(obs)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        demos.add(flatten_obs(spec, obs), action, reward, terminated, truncated, flatten_obs(spec, next_obs), t == 0)
        obs = next_obs
    out = {"seed": seed, "env_steps_to_first_lap": None, "wall_s_to_first_lap": None, "sim_s_to_first_lap": None,
           "wall_s_to_1p3_bar": None, "sim_s_to_1p3_bar": None, "lap_time_ratio": None, "recoveries_per_lap": None}
    obs, _ = env.reset(seed=seed + 1)
    start, steps, sim_s, laps, recoveries, episode_start = time.perf_counter(), 0, 0.0, [], 0, True
    while time.perf_counter() - start < 60 * max_minutes:
        flat = flatten_obs(spec, obs)
        if steps < config.warmup_steps:
            action = rng.uniform(-1, 1, 2).astype(np.float32)
        else:
            with torch.no_grad():
                features = agent.encoder({k: torch.from_numpy(v)[None] for k, v in flat.items()})
                action = agent.actor.sample(features)[0][0].numpy()
        obs, reward, terminated, truncated, info = env.step(action)
        steps, sim_s, recoveries = steps + 1, sim_s + 0.1 * (1 + info["recovery_steps"]), recoveries + bool(info["recovery"])
        online.add(flat, action, reward, terminated, truncated, flatten_obs(spec, obs), episode_start)
        episode_start = terminated or truncated
        if episode_start:
            obs, _ = env.reset()
        if steps >= config.warmup_steps:
            for _ in range(utd):
                agent.update(batch_to_torch(sample_mixed(online, demos, config.batch_size, config.demo_ratio)))
        if "lap_time_s" in info:
            laps.append(info["lap_time_s"])
            wall_s = time.perf_counter() - start
            if out["wall_s_to_first_lap"] is None:
                out.update(env_steps_to_first_lap=steps, wall_s_to_first_lap=round(wall_s, 1), sim_s_to_first_lap=round(sim_s, 1))
            if info["lap_time_s"] <= 1.3 * expert_best_s:
                out.update(env_steps_to_1p3_bar=steps, wall_s_to_1p3_bar=round(wall_s, 1), sim_s_to_1p3_bar=round(sim_s, 1))
                break
    if laps:
        out.update(lap_time_ratio=round(min(laps) / expert_best_s, 3), recoveries_per_lap=round(recoveries / len(laps), 2))
    return out


def session(seed: int, config: str = "launch/sim_rc_car_state.yaml") -> dict:
    """One `robot-rl train` session; the report's lap figures (and, for the camera session, the encoder's)."""
    from robot_rl.config import load_session
    from robot_rl.envs import make_env, make_expert
    from robot_rl.session import train

    with tempfile.TemporaryDirectory() as run_dir:
        before, wall_start = os.times(), time.perf_counter()
        report = train(config, run_dir=run_dir, seed=seed, quiet=True, log=lambda *_: None)
        after = os.times()  # learner and actor are waited-for children: their CPU time is counted here
        cpu_s = sum(getattr(after, k) - getattr(before, k) for k in ("user", "system", "children_user", "children_system"))
        out = {"seed": seed, "env_steps": report["env_steps"], "session_wall_s": round(time.perf_counter() - wall_start, 1),
               "session_cpu_s": round(cpu_s, 1),
               "training_wall_s": report["training_wall_s"], "training_sim_time_s": report.get("training_sim_time_s")}
        encoder_report = Path(run_dir) / "encoder" / "rc_car_camera_encoder.json"
        if encoder_report.exists():  # the camera session pretrained its frozen encoder first
            pretrain = json.loads(encoder_report.read_text())
            out.update(encoder_pretrain_wall_s=pretrain["wall_s"], encoder_heldout_mae=round(pretrain["heldout"]["mae"], 4))
            embedding_env = make_env(load_session(Path(run_dir) / "config.yaml"))
            out["embedding_env_steps_per_s"] = round(_env_rate_of(embedding_env, make_expert(embedding_env)), 1)
    for name, when in (report.get("training_milestones") or {}).items():
        for unit in ("env_steps", "wall_s", "sim_s"):
            out[f"{name}_{unit}"] = when and when[unit]
    task = report.get("task_metrics") or {}
    for key in ("best_lap_time_s", "mean_lap_time_s", "lap_time_ratio", "recoveries_per_lap", "expert_best_lap_s"):
        out[f"eval_{key}"] = task.get(key)
    out["onnx_eval_lap_time_ratio"] = (report.get("onnx_task_metrics") or {}).get("lap_time_ratio")
    # the names: to the first training lap and to the first training lap within 1.3x of the expert's best
    first, bar = (report.get("training_milestones") or {}).get("first_lap"), (report.get("training_milestones") or {}).get("lap_within_bar")
    out.update(wall_s_to_first_lap=first and first["wall_s"], sim_s_to_first_lap=first and first["sim_s"],
               wall_s_to_1p3_bar=bar and bar["wall_s"], sim_s_to_1p3_bar=bar and bar["sim_s"],
               lap_time_ratio=task.get("lap_time_ratio"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", choices=sorted(TRACKS))
    parser.add_argument("--learn", action="store_true", help="add the learning figures (3 seeds, minutes each)")
    parser.add_argument("--session", action="store_true", help="the learning figures through `robot-rl train` instead")
    parser.add_argument("--seeds", type=int, default=1, help="sessions for --session (about 10 min each on 2 cores)")
    parser.add_argument("--first-seed", type=int, default=0, help="--session runs seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--config", default="launch/sim_rc_car_state.yaml",
                        help="session file for --session; launch/sim_rc_car_camera.yaml: camera + frozen encoder, 10 critics, UTD 8")
    args = parser.parse_args()
    if args.tune:
        print(json.dumps(tune(args.tune)))
        return
    if args.session:
        torch.set_num_threads(1)
        runs = [session(seed, args.config) for seed in range(args.first_seed, args.first_seed + args.seeds)]
        keys = [k for k, v in runs[0].items() if k != "seed" and isinstance(v, (int, float))]
        result = {k: float(np.median([r[k] for r in runs])) for k in keys if all(r[k] is not None for r in runs)}
        result["sim_steps_per_s"] = round(_env_rate("pixels"), 1)  # one car, camera 64x64, full task step
        print(json.dumps({"config": args.config, "seeds": args.seeds, **result, "runs": runs}))
        return
    pixels_rate, state_rate = _env_rate("pixels"), _env_rate("state")
    result = {
        "sim_steps_per_s": round(pixels_rate, 1),  # one car, camera 64×64, full task step
        "state_only_steps_per_s": round(state_rate, 1),
        "vec256_car_steps_per_s": round(_vec_rate(), 1),
        "sim_seconds_per_wall_second": round(0.1 * pixels_rate, 1),
    }
    for track in sorted(TRACKS):
        slow, _ = expert_laps(track, "slow")
        fast, recoveries = expert_laps(track, "fast")
        result[f"{track}_slow_demo_lap_s"] = round(slow[0], 2) if slow else None
        result[f"{track}_expert_best_lap_s"] = round(min(fast), 2) if fast else None
        result[f"{track}_expert_recoveries"] = recoveries
    learning_keys = ("wall_s_to_first_lap", "sim_s_to_first_lap", "wall_s_to_1p3_bar", "sim_s_to_1p3_bar", "lap_time_ratio")
    result.update(dict.fromkeys(learning_keys))  # null unless --learn
    if args.learn:
        runs = [learn(seed, result["loop_expert_best_lap_s"]) for seed in range(3)]
        for key in learning_keys:
            values = [r[key] for r in runs]
            result[key] = None if None in values else float(np.median(values))
        result["learning_runs"] = runs
    print(json.dumps(result))


if __name__ == "__main__":
    main()
