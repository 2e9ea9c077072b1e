"""Env steps per second of the simulated Franka pick-cube task, state and pixels modes.

Each mode runs the scripted expert with action noise 0.3 (so grasps and their contacts are
included, as in training with a competent policy) until `--steps` env steps have been taken.
Reports wall-clock and process CPU time per step (on a shared 2-core machine the wall figure
includes the neighbours), the expert's success rate and episode length in state mode, and the
physics substeps per policy step. Pixels mode renders both cameras at 128x128 every step; set
MUJOCO_GL=egl (or osmesa) for headless rendering. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sim2real.pick_cube import PickCubeEnv, PickCubeExpert  # noqa: E402


def measure(env: PickCubeEnv, steps: int) -> dict:
    expert = PickCubeExpert(env, action_noise_std=0.3, seed=0)
    obs, _ = env.reset(seed=0)
    episodes, successes, lengths = 0, 0, []
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            episodes += 1
            successes += info["is_success"]
            lengths.append(env.elapsed_steps)
            obs, _ = env.reset(seed=episodes)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "steps_per_s": round(steps / wall, 1),
        "ms_per_step": round(1e3 * wall / steps, 3),
        "cpu_ms_per_step": round(1e3 * cpu / steps, 3),
        "expert_success_rate": round(successes / max(episodes, 1), 3),
        "expert_mean_steps": round(float(np.mean(lengths)), 1) if lengths else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="env steps per mode")
    args = parser.parse_args()

    state_env = PickCubeEnv(obs_mode="state")
    state = measure(state_env, args.steps)
    pixels_env = PickCubeEnv(obs_mode="pixels", image_size=128, cameras=("front", "wrist"))
    pixels = measure(pixels_env, max(args.steps // 4, 100))
    print(json.dumps({
        "bench": "pick_cube_env",
        "state_steps_per_s": state["steps_per_s"],
        "state_ms_per_step": state["ms_per_step"],
        "state_cpu_ms_per_step": state["cpu_ms_per_step"],
        "pixels_steps_per_s": pixels["steps_per_s"],
        "pixels_ms_per_step": pixels["ms_per_step"],
        "pixels_cpu_ms_per_step": pixels["cpu_ms_per_step"],
        "physics_substeps_per_step": state_env.n_substeps,
        "physics_dt_s": state_env.physics_dt_s,
        "image_size": 128,
        "cameras": ["front", "wrist"],
        "mujoco_gl": os.environ.get("MUJOCO_GL", ""),
        "expert_noise": 0.3,
        "expert_success_rate": state["expert_success_rate"],
        "expert_mean_steps": state["expert_mean_steps"],
        "loadavg_1min": os.getloadavg()[0],
    }))
    state_env.close()
    pixels_env.close()


if __name__ == "__main__":
    main()
