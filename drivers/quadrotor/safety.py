"""Quadrotor safety logic, free of any radio: geofence, dead-man timeout, attitude and NaN checks.

Setpoints are clamped into the geofence; a measured state outside the fence (plus a margin),
tilted past ``max_tilt_deg`` or not finite calls for an emergency stop; a gap in setpoints longer
than ``deadman_timeout_ms`` calls for the stop setpoint. The driver acts on these verdicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class QuadrotorSafetyConfig:
    geofence_min_m: tuple[float, float, float] = (-1.0, -1.0, 0.0)
    geofence_max_m: tuple[float, float, float] = (1.0, 1.0, 1.5)
    geofence_margin_m: float = 0.3  # measured position this far outside the fence stops the motors
    deadman_timeout_ms: float = 250.0  # no setpoint for this long: stop setpoint (the firmware itself waits 500 ms)
    max_speed_m_s: float = 1.0  # velocity setpoints are scaled down to this
    max_tilt_deg: float = 75.0  # measured roll/pitch beyond this stops the motors

    def __post_init__(self):
        low, high = np.asarray(self.geofence_min_m), np.asarray(self.geofence_max_m)
        if low.shape != (3,) or high.shape != (3,) or not (low < high).all():
            raise ValueError(f"geofence_min_m must be below geofence_max_m on every axis, got {self.geofence_min_m} "
                             f"and {self.geofence_max_m}; fix the quadrotor safety settings.")
        if self.deadman_timeout_ms <= 0 or self.max_speed_m_s <= 0 or self.geofence_margin_m < 0:
            raise ValueError("deadman_timeout_ms and max_speed_m_s must be > 0 and geofence_margin_m >= 0.")


class QuadrotorSafety:
    def __init__(self, config: QuadrotorSafetyConfig = QuadrotorSafetyConfig()):
        self.config = config
        self._low = np.asarray(config.geofence_min_m, np.float64)
        self._high = np.asarray(config.geofence_max_m, np.float64)
        self.clamped_setpoints = 0

    def clamp_position(self, position_m) -> np.ndarray:
        """A position setpoint inside the geofence; NaN/inf raise (never sent)."""
        position = np.asarray(position_m, np.float64)
        if position.shape != (3,) or not np.isfinite(position).all():
            raise ValueError(f"position setpoint must be 3 finite numbers, got {position_m}.")
        clamped = np.clip(position, self._low, self._high)
        self.clamped_setpoints += int(not np.array_equal(clamped, position))
        return clamped

    def clamp_velocity(self, velocity_m_s, position_m=None) -> np.ndarray:
        """Speed capped at ``max_speed_m_s``; components that push further out of the fence are zeroed."""
        velocity = np.asarray(velocity_m_s, np.float64)
        if velocity.shape != (3,) or not np.isfinite(velocity).all():
            raise ValueError(f"velocity setpoint must be 3 finite numbers, got {velocity_m_s}.")
        original = velocity.copy()
        if position_m is not None:
            position = np.asarray(position_m, np.float64)
            velocity = np.where(((position >= self._high) & (velocity > 0)) | ((position <= self._low) & (velocity < 0)),
                                0.0, velocity)
        speed = float(np.linalg.norm(velocity))
        if speed > self.config.max_speed_m_s:
            velocity = velocity * (self.config.max_speed_m_s / speed)
        self.clamped_setpoints += int(not np.array_equal(velocity, original))
        return velocity

    def state_violation(self, position_m, roll_deg: float, pitch_deg: float) -> str | None:
        """Why the measured state calls for an emergency stop, or None when it is fine."""
        position = np.asarray(position_m, np.float64)
        if not (np.isfinite(position).all() and math.isfinite(roll_deg) and math.isfinite(pitch_deg)):
            return "state estimate is not finite"
        margin = self.config.geofence_margin_m
        if (position < self._low - margin).any() or (position > self._high + margin).any():
            return f"position {np.round(position, 3).tolist()} m is outside the geofence"
        if max(abs(roll_deg), abs(pitch_deg)) > self.config.max_tilt_deg:
            return f"tilt (roll {roll_deg:.0f}, pitch {pitch_deg:.0f} deg) exceeds {self.config.max_tilt_deg:.0f} deg"
        return None

    def deadman_expired(self, last_setpoint_ns: int | None, now_ns: int) -> bool:
        """True once setpoints have stopped for longer than the timeout (never before the first one)."""
        return last_setpoint_ns is not None and (now_ns - last_setpoint_ns) > self.config.deadman_timeout_ms * 1e6
