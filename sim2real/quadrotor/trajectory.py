"""Reference trajectories for tracking: the figure eight flown in "Learning to Fly in Seconds".

Same curve as the L2F Crazyflie firmware (``rl_tools_controller.c``, FIGURE_EIGHT mode): with
phase ``theta = 2 pi progress + pi/2``, ``x = s cos(theta)``, ``y = s sin(2 theta) / 2``, z
constant, so scale s = 1 m spans 2 m x 1 m and starts at the origin. Progress advances at
1/period, ramped up linearly from zero over ``warmup_s`` (firmware: 5.5 s period, 2 s warm-up).
"""

from __future__ import annotations

import numpy as np


def figure_eight_progress(t_s, period_s: float = 5.5, warmup_s: float = 2.0) -> np.ndarray:
    """Laps completed at time t_s (and its rate, laps/s) with the linear speed ramp."""
    t = np.asarray(t_s, np.float64)
    rate = 1.0 / period_s
    if warmup_s <= 0:
        return t * rate, np.full_like(t, rate)
    ramp = np.minimum(t, warmup_s)
    progress = rate * ramp * ramp / (2.0 * warmup_s) + rate * np.maximum(t - warmup_s, 0.0)
    return progress, rate * ramp / warmup_s


def figure_eight(t_s, period_s: float = 5.5, scale_m: float = 1.0, warmup_s: float = 2.0):
    """Target (position_m, velocity_m_s), each of shape t_s.shape + (3,), relative to the start point."""
    progress, rate = figure_eight_progress(t_s, period_s, warmup_s)
    theta = 2.0 * np.pi * progress + 0.5 * np.pi
    theta_dot = 2.0 * np.pi * rate
    position = np.stack([
        scale_m * np.cos(theta),
        0.5 * scale_m * np.sin(2.0 * theta),
        np.zeros_like(theta),
    ], axis=-1)
    velocity = np.stack([
        -scale_m * np.sin(theta) * theta_dot,
        scale_m * np.cos(2.0 * theta) * theta_dot,
        np.zeros_like(theta),
    ], axis=-1)
    return position, velocity
