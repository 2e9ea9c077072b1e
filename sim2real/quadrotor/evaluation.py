"""Hover and figure-eight metrics for any policy ``(N, 146) float32 -> (N, 4)`` on ``VecQuadrotorHover``.

Hover success (the issue's criterion): the episode runs its full length without terminating and
ends within ``success_radius_m`` of the target. All episodes run in one vector env, in lock step.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from sim2real.quadrotor.env import VecQuadrotorHover
from sim2real.quadrotor.task import HoverTaskConfig

PolicyFn = Callable[[np.ndarray], np.ndarray]
SUCCESS_RADIUS_M = 0.2
L2F_BOX_M = 0.6  # L2F's termination distance per axis


def evaluate_hover(policy: PolicyFn, task: HoverTaskConfig, episodes: int = 1000, seed: int = 0,
                   success_radius_m: float = SUCCESS_RADIUS_M, report_steps: tuple[int, ...] = (100, 200),
                   env=None) -> dict:
    """Runs ``episodes`` episodes of ``task.episode_steps`` steps from the task's random initial states.

    ``env``: the vector env to fly instead of the nominal ``VecQuadrotorHover`` (other parameters, an
    action delay wrapper); built with ``autoreset=False`` and ``episodes`` envs, with its state API.
    """
    if env is None:
        env = VecQuadrotorHover(episodes, task, seed=seed, autoreset=False)
    elif env.num_envs != episodes:
        raise ValueError(f"evaluate_hover: the given env runs {env.num_envs} envs, not the {episodes} episodes asked for.")
    obs, _ = env.reset(seed=seed)
    alive = np.ones(episodes, bool)
    returns = np.zeros(episodes)
    errors_at = {}
    excursion_m = np.zeros(episodes)  # largest per-axis distance from the target while alive
    for step in range(1, task.episode_steps + 1):
        obs, reward, terminated, _, _ = env.step(np.asarray(policy(obs), np.float64))
        returns += np.where(alive, reward, 0.0)
        alive &= ~terminated
        state = env.state
        excursion_m = np.maximum(excursion_m, np.abs(state["position_m"] - state["target_position_m"]).max(axis=1) * alive)
        if terminated.any():
            obs = _park_crashed(env, terminated)
        if step in report_steps:
            errors_at[step] = np.where(alive, _position_error(env), task.termination_position_m)
    final_error = _position_error(env)
    success = alive & (final_error < success_radius_m)
    out = {
        "episodes": episodes,
        "success_rate": float(success.mean()),
        "mean_return": float(returns.mean()),
        "terminated_rate": float((~alive).mean()),
        "final_position_error_m": float(np.median(final_error[alive])) if alive.any() else None,
        # success without ever leaving L2F's 0.6 m training box (stricter than the task's termination when it is wider)
        "success_rate_within_l2f_box": float((success & (excursion_m <= L2F_BOX_M)).mean()),
    }
    for step, error in errors_at.items():
        # episodes that crashed before this step count with the termination distance
        out[f"mean_position_error_m_at_{step}"] = float(error.mean())
    return out


def figure_eight_rmse(policy: PolicyFn, task: HoverTaskConfig, laps: float = 2.0, seed: int = 0) -> dict:
    """Tracks the figure eight from rest at its start point; RMSE of position error after the warm-up."""
    steps = int(round((task.figure_eight_warmup_s + laps * task.figure_eight_period_s) / task.dt_s))
    track = replace(task.without_noise(), target="figure_eight", episode_steps=steps, init_guidance=1.0,
                    init_linear_velocity_m_s=0.0, init_angular_velocity_rad_s=0.0,
                    termination_position_m=max(task.termination_position_m, 10.0))
    env = VecQuadrotorHover(1, track, seed=seed, autoreset=False)
    obs, _ = env.reset(seed=seed)
    warmup_steps = int(round(track.figure_eight_warmup_s / track.dt_s))
    squared = []
    for step in range(1, steps + 1):
        obs, _, terminated, _, _ = env.step(np.asarray(policy(obs), np.float64))
        if terminated[0]:
            return {"figure_eight_rmse_m": None, "figure_eight_completed": False}  # crashed: no RMSE to report
        if step > warmup_steps:
            squared.append(_position_error(env)[0] ** 2)
    return {"figure_eight_rmse_m": float(np.sqrt(np.mean(squared))), "figure_eight_completed": True,
            "figure_eight_period_s": track.figure_eight_period_s, "figure_eight_laps": laps}


def _park_crashed(env, terminated: np.ndarray) -> np.ndarray:
    """Parks crashed vehicles (again) at rest on the target so their states stay finite (they count as
    failures); returns the actor observation after that."""
    crashed = np.flatnonzero(terminated)
    env.set_state(crashed, position_m=env.state["target_position_m"][crashed], quaternion_wxyz=[1, 0, 0, 0],
                  linear_velocity_m_s=0.0, angular_velocity_rad_s=0.0)
    return env.actor_obs


def _position_error(env: VecQuadrotorHover) -> np.ndarray:
    state = env.state
    return np.linalg.norm(state["position_m"] - state["target_position_m"], axis=1)


def evaluate_hover_firmware(firmware, task: HoverTaskConfig, episodes: int = 50, seed: int = 0,
                            policy_hz: int = 500, success_radius_m: float = SUCCESS_RADIUS_M) -> dict:
    """Hover success of a firmware-style controller flying the simulator at ``policy_hz``.

    ``firmware`` has ``reset(initial_action (N, 4))`` and ``control(state (N, 18)) -> (N, 4)`` and keeps
    its own action history (advanced at the training rate). The simulator integrates 1/policy_hz
    per tick; its own history is not used. Same initial states and success rule as ``evaluate_hover``.
    """
    substeps = max(1, int(round(policy_hz * task.dt_s)))  # 5 simulator steps of 2 ms per 10 ms training step
    fast = replace(task, dt_s=task.dt_s / substeps, episode_steps=task.episode_steps * substeps)
    env = VecQuadrotorHover(episodes, fast, seed=seed, autoreset=False)
    obs, _ = env.reset(seed=seed)
    firmware.reset(obs[:, -4:])  # the env starts its history at the initial rotor command
    alive = np.ones(episodes, bool)
    for _ in range(fast.episode_steps):
        action = firmware.control(obs[:, :18])
        obs, _, terminated, _, _ = env.step(np.where(alive[:, None], action, 0.0).astype(np.float64))
        alive &= ~terminated
        if terminated.any():
            obs = _park_crashed(env, terminated)
    final_error = _position_error(env)
    success = alive & (final_error < success_radius_m)
    return {"episodes": episodes, "success_rate": float(success.mean()), "terminated_rate": float((~alive).mean()),
            "policy_hz": policy_hz}
