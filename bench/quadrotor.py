"""Quadrotor benchmark: simulator throughput, wall time to the hover criterion, C policy inference.

Prints one JSON line:
  sim_steps_per_s      VecQuadrotorHover env steps/s (1,024 envs, numpy, one thread)
  train_wall_s         median over seeds of the training wall time of the launch file as is: it stops when a
                       periodic 200-episode evaluation reaches its stop_at_success_rate (evaluation time included)
  train_cpu_s          the same runs' CPU time (what they cost on an idle core; wall time grows with load)
  hover_success_rate   median over seeds of the final 1,000-episode success rate (other seeds than training's evals)
  c_inference_us       median host time of one generated-C actor call (gcc -O2)
A seed that never reaches the stop rate runs the launch file's whole budget and keeps its best evaluated
actor (criterion_reached_seeds says how many stopped early).
Usage: python bench/quadrotor.py [--seeds 3] [--first-seed 0] [--config launch/sim_quadrotor_hover.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from robot_rl.vectorized.trainer import train_vectorized  # noqa: E402
from sim2real.quadrotor import VecQuadrotorHover  # noqa: E402


def sim_steps_per_s(num_envs: int = 1024, steps: int = 300) -> float:
    env = VecQuadrotorHover(num_envs, seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(0.2, 0.45, (steps, num_envs, 4))
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    return num_envs * steps / (time.perf_counter() - start)


def _median_or_none(values):
    finite = [v for v in values if v is not None]  # None: the vehicle crashed on the figure eight
    return float(np.median(finite)) if finite else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--config", default="launch/sim_quadrotor_hover.yaml")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            config = os.path.join(tmp, f"bench_{seed}.yaml")
            raw = yaml.safe_load(open(args.config))
            raw["export_c"] = seed == args.first_seed  # the C build and its inference timing need one run
            with open(config, "w") as handle:
                yaml.safe_dump(raw, handle)
            report = train_vectorized(config, os.path.join(tmp, f"run_{seed}"), seed=seed, quiet=True, log=lambda *_: None)
            runs.append(report)
    reached = [r for r in runs if r["stopped_by"] == "success_rate"]
    c_run = runs[0]
    print(json.dumps({
        "bench": "quadrotor",
        "sim_steps_per_s": round(sim_steps_per_s()),
        "train_wall_s": float(np.median([r["train_wall_s"] for r in runs])),
        "train_wall_s_per_seed": [r["train_wall_s"] for r in runs],
        "train_cpu_s": float(np.median([r["train_cpu_s"] for r in runs])),
        "train_cpu_s_per_seed": [r["train_cpu_s"] for r in runs],
        "criterion_reached_seeds": len(reached),
        "env_steps_median": float(np.median([r["env_steps"] for r in runs])),
        "hover_success_rate": float(np.median([r["hover_success_rate"] for r in runs])),
        "hover_success_rate_per_seed": [r["hover_success_rate"] for r in runs],
        "termination_position_m": runs[0]["termination_position_m"],
        "hover_success_rate_within_l2f_box": float(np.median([r["hover_success_rate_within_l2f_box"] for r in runs])),
        "hover_success_rate_within_l2f_box_per_seed": [r["hover_success_rate_within_l2f_box"] for r in runs],
        "mean_position_error_m_at_100": float(np.median([r["mean_position_error_m_at_100"] for r in runs])),
        "mean_position_error_m_at_200": float(np.median([r["mean_position_error_m_at_200"] for r in runs])),
        "figure_eight_rmse_m": _median_or_none([r["figure_eight_rmse_m"] for r in runs]),
        "c_inference_us": c_run.get("c_inference_us"),
        "c_firmware_success_rate": c_run.get("c_firmware_success_rate"),
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)), "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
