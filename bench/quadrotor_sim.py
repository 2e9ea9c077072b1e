"""Crazyflie (L2F) simulator throughput: env-steps/s of the vectorized and the gymnasium env.

Full task steps (RK4 dynamics, reward, termination, noisy 146-d actor and 156-d critic
observations, same-step autoreset), actions near hover with noise so episodes do end.
Prints one JSON line; ``sim_steps_per_s`` is the 4096-env figure. Best of 3 repeats.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small shared machine: no BLAS thread pools

import json
import time

import numpy as np

from sim2real.quadrotor import CRAZYFLIE, QuadrotorHoverEnv, VecQuadrotorHover

REPEATS = 3
SECONDS_PER_REPEAT = 1.0


def _actions(num_envs: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(CRAZYFLIE.hover_action() + 0.1 * rng.standard_normal((count, num_envs, 4)), -1, 1)


def _rate(step, actions, envs_per_step: int) -> float:
    best = 0.0
    for _ in range(REPEATS):
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < SECONDS_PER_REPEAT:
            for action in actions:
                step(action)
            steps += len(actions)
        best = max(best, steps * envs_per_step / (time.perf_counter() - start))
    return best


def vectorized_rate(num_envs: int) -> float:
    env = VecQuadrotorHover(num_envs, seed=0)
    env.reset()
    return _rate(env.step, _actions(num_envs, 20 if num_envs >= 1024 else 200), num_envs)


def gym_rate() -> float:
    env = QuadrotorHoverEnv()
    env.reset(seed=0)

    def step(action):
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()

    return _rate(step, _actions(1, 200)[:, 0], 1)


def main():
    per_n = {n: vectorized_rate(n) for n in (1, 256, 4096)}
    result = {
        "sim_steps_per_s": round(per_n[4096]),
        **{f"vec_steps_per_s_n{n}": round(rate) for n, rate in per_n.items()},
        "gym_env_steps_per_s": round(gym_rate()),
        "dtype": "float64",
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
