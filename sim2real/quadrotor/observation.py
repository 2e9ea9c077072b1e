"""Observation layouts of the L2F actor (146) and of the asymmetric critic (156).

The actor sees what the Crazyflie sees onboard (L2F): the position error, the attitude as a
rotation matrix, velocities and its own last 32 actions. The critic additionally sees, noise
free, the actual rotor speeds and the episode's disturbance. Everything is float32.
"""

from __future__ import annotations

import numpy as np

ACTION_HISTORY_LENGTH = 32  # L2F; oldest first, the action just applied last

ACTOR_OBS_LAYOUT: tuple[tuple[str, int], ...] = (
    ("position_error_m", 3),  # position - target position, world frame
    ("rotation_matrix", 9),  # body-to-world, row-major
    ("linear_velocity_m_s", 3),  # velocity - target velocity, world frame
    ("angular_velocity_rad_s", 3),  # body frame
    ("action_history", 4 * ACTION_HISTORY_LENGTH),  # normalized rpm setpoints in [-1, 1]
)
CRITIC_OBS_LAYOUT: tuple[tuple[str, int], ...] = ACTOR_OBS_LAYOUT + (
    ("rotor_speed_normalized", 4),  # actual rpm mapped like actions to [-1, 1]
    ("disturbance_force_n", 3),  # world frame
    ("disturbance_torque_nm", 3),  # body frame
)


def layout_slices(layout) -> dict[str, slice]:
    out, start = {}, 0
    for name, size in layout:
        out[name] = slice(start, start + size)
        start += size
    return out


ACTOR_OBS_DIM = sum(size for _, size in ACTOR_OBS_LAYOUT)
CRITIC_OBS_DIM = sum(size for _, size in CRITIC_OBS_LAYOUT)
ACTOR = layout_slices(ACTOR_OBS_LAYOUT)
CRITIC = layout_slices(CRITIC_OBS_LAYOUT)
STATE_COLUMNS = slice(0, ACTOR["action_history"].start)  # the 18 columns that carry noise
HISTORY = ACTOR["action_history"]


def actor_noise_std(task) -> np.ndarray:
    """(18,) per-column noise std for the state part of the actor observation."""
    return np.concatenate([
        np.full(3, task.obs_noise_position_m),
        np.full(9, task.obs_noise_orientation),
        np.full(3, task.obs_noise_linear_velocity_m_s),
        np.full(3, task.obs_noise_angular_velocity_rad_s),
    ]).astype(np.float32)
