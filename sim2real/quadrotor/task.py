"""Settings of the hover (and figure-eight tracking) task; defaults are L2F's training setup.

Sources: L2F ``src/parameters.h`` (init ``orientation_biggest_angle``, observation noise,
disturbances), ``parameters/init/default.h`` and ``parameters/termination/default.h``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Literal

from sim2real.quadrotor.reward import L2F_INITIAL_REWARD, RewardWeights


@dataclass(frozen=True)
class DomainRandomization:
    """Per-env multiplicative factors drawn uniformly in [1 - rel, 1 + rel] at each reset."""

    mass_rel: float = 0.0
    thrust_coefficient_rel: float = 0.0
    motor_time_constant_rel: float = 0.0
    inertia_rel: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"DomainRandomization.{f.name} must be in [0, 1), got {value}.")


@dataclass(frozen=True)
class HoverTaskConfig:
    dt_s: float = 0.01  # L2F: 100 Hz, one RK4 step per action
    episode_steps: int = 500  # truncation (L2F episode length)
    # initial state (L2F orientation_biggest_angle)
    init_guidance: float = 0.1  # share of episodes starting on the target, level (velocities still random)
    init_position_m: float = 0.2  # uniform per axis around the target
    init_max_angle_rad: float = math.pi / 2  # total rotation angle of a uniformly drawn attitude
    init_linear_velocity_m_s: float = 1.0  # uniform per axis
    init_angular_velocity_rad_s: float = 1.0  # uniform per axis
    init_rpm_action: tuple[float, float] = (0.0, 0.0)  # normalized rpm range at reset (L2F: mid-range)
    # per-episode constant disturbances, Gaussian per axis (L2F: m g / 20 and m g / 10000)
    disturbance_force_std_n: float = 0.027 * 9.81 / 20
    disturbance_torque_std_nm: float = 0.027 * 9.81 / 10000
    # Gaussian noise on the actor's observation (L2F); the rotation-matrix noise is per element
    obs_noise_position_m: float = 0.001
    obs_noise_orientation: float = 0.001
    obs_noise_linear_velocity_m_s: float = 0.002
    obs_noise_angular_velocity_rad_s: float = 0.002
    action_noise_std: float = 0.0  # Gaussian noise on the normalized action (L2F: 0)
    # termination, any axis (L2F: 0.6 m; it trained with velocity limits of 1000, i.e. off)
    termination_position_m: float = 0.6
    termination_linear_velocity_m_s: float = 10.0  # L2F "classic" termination
    termination_angular_velocity_rad_s: float = 35.0  # Crazyflie gyro full scale, 2000 deg/s
    reward: RewardWeights = L2F_INITIAL_REWARD
    domain_randomization: DomainRandomization = field(default_factory=DomainRandomization)
    target: Literal["hover", "figure_eight"] = "hover"
    figure_eight_period_s: float = 5.5
    figure_eight_scale_m: float = 1.0
    figure_eight_warmup_s: float = 2.0

    def __post_init__(self):
        if self.target not in ("hover", "figure_eight"):
            raise ValueError(f"HoverTaskConfig.target must be 'hover' or 'figure_eight', got {self.target!r}.")
        if self.episode_steps < 1 or self.dt_s <= 0:
            raise ValueError("HoverTaskConfig: episode_steps must be >= 1 and dt_s > 0.")
        low, high = self.init_rpm_action
        if not -1.0 <= low <= high <= 1.0:
            raise ValueError(f"HoverTaskConfig.init_rpm_action must satisfy -1 <= low <= high <= 1, got {self.init_rpm_action}.")
        if not 0.0 <= self.init_guidance <= 1.0:
            raise ValueError(f"HoverTaskConfig.init_guidance is a probability, got {self.init_guidance}.")
        if not 0.0 <= self.init_max_angle_rad <= math.pi:
            raise ValueError(f"HoverTaskConfig.init_max_angle_rad must be in [0, pi], got {self.init_max_angle_rad}.")

    def without_noise(self) -> "HoverTaskConfig":
        """Same task with observation noise, action noise and disturbances off (evaluation, tests)."""
        return replace(
            self, disturbance_force_std_n=0.0, disturbance_torque_std_nm=0.0, obs_noise_position_m=0.0,
            obs_noise_orientation=0.0, obs_noise_linear_velocity_m_s=0.0, obs_noise_angular_velocity_rad_s=0.0,
            action_noise_std=0.0,
        )
