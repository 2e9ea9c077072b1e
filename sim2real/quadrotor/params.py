"""Crazyflie 2.1 physical parameters, as identified in "Learning to Fly in Seconds".

Values are L2F's ``crazy_flie`` dynamics (RLtools ``learning_to_fly`` repository,
``parameters/dynamics/crazy_flie.h``). Body frame: x forward, y left, z up. Rotors are in
the Crazyflie's X configuration and numbered like its motors M1..M4:

    index  motor  position (x, y) m     spin seen from above   reaction torque on body
    0      M1     (+0.028, -0.028)      counter-clockwise      -z (yaws the body clockwise)
    1      M2     (-0.028, -0.028)      clockwise              +z
    2      M3     (-0.028, +0.028)      counter-clockwise      -z
    3      M4     (+0.028, +0.028)      clockwise              +z

The signs match L2F's rotor torque directions (-1, +1, -1, +1) and the Crazyflie firmware's
force/torque power distribution (M1 and M3 take ``-yawPart``).

Actions are normalized rpm setpoints in [-1, 1], mapped linearly (L2F convention):
``rpm = rpm_min + (action + 1) / 2 * (rpm_max - rpm_min)``. Thrust is quadratic in rpm, so
hover needs ``action = 2 * sqrt(m g / (4 k_f)) / rpm_max - 1 = 0.33405`` (L2F: 0.334).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CrazyflieParams:
    mass_kg: float = 0.027
    rotor_positions_m: tuple[tuple[float, float], ...] = (
        (0.028, -0.028),
        (-0.028, -0.028),
        (-0.028, 0.028),
        (0.028, 0.028),
    )
    rotor_torque_signs: tuple[float, ...] = (-1.0, 1.0, -1.0, 1.0)  # reaction torque about body +z
    thrust_coefficient_n_per_rpm2: float = 3.16e-10  # thrust = k_f * rpm^2 per rotor
    torque_to_thrust_m: float = 0.005964552  # rotor drag torque = this * rotor thrust
    inertia_kg_m2: tuple[float, float, float] = (3.85e-6, 3.85e-6, 5.9675e-6)  # diagonal
    motor_time_constant_s: float = 0.15  # first-order lag from rpm setpoint to rpm
    rpm_min: float = 0.0
    rpm_max: float = 21702.0
    gravity_m_s2: float = 9.81

    def __post_init__(self):
        if len(self.rotor_positions_m) != 4 or len(self.rotor_torque_signs) != 4:
            raise ValueError("CrazyflieParams: give exactly 4 rotor positions and 4 torque signs.")
        positive = ("mass_kg", "thrust_coefficient_n_per_rpm2", "motor_time_constant_s", "gravity_m_s2")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"CrazyflieParams.{name} must be > 0, got {getattr(self, name)}.")
        if min(self.inertia_kg_m2) <= 0:
            raise ValueError(f"CrazyflieParams.inertia_kg_m2 must be positive, got {self.inertia_kg_m2}.")
        if not self.rpm_max > self.rpm_min >= 0:
            raise ValueError(f"CrazyflieParams: need 0 <= rpm_min < rpm_max, got {self.rpm_min}, {self.rpm_max}.")

    def mixer(self) -> np.ndarray:
        """(3, 4) matrix: body torque = mixer @ rotor thrusts (roll, pitch from arms; yaw from drag)."""
        xy = np.asarray(self.rotor_positions_m, np.float64)
        signs = np.asarray(self.rotor_torque_signs, np.float64)
        # r x (0, 0, f) = (r_y f, -r_x f, 0); yaw is drag torque = sign * c * f
        return np.stack([xy[:, 1], -xy[:, 0], signs * self.torque_to_thrust_m])

    def action_to_rpm(self, action):
        return self.rpm_min + (np.asarray(action) + 1.0) * (0.5 * (self.rpm_max - self.rpm_min))

    def rpm_to_action(self, rpm):
        return (np.asarray(rpm) - self.rpm_min) / (self.rpm_max - self.rpm_min) * 2.0 - 1.0

    def hover_rpm(self) -> float:
        return math.sqrt(self.mass_kg * self.gravity_m_s2 / (4.0 * self.thrust_coefficient_n_per_rpm2))

    def hover_action(self) -> float:
        return float(self.rpm_to_action(self.hover_rpm()))


CRAZYFLIE = CrazyflieParams()
