"""Checks on arm commands arriving over ROS, before they reach `SafeArm` (which then clips and rate-limits).

A command is rejected, with a counted reason, when it is stale, non-finite, in the wrong frame, far
outside the workspace, far over the speed limits, or arrives while the e-stop is engaged. Small
excursions are left to the safety filter, which clips them (so a policy at the box edge keeps moving).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from drivers.safety import SafetyConfig


@dataclass
class CommandGate:
    safety: SafetyConfig
    frame_id: str = "base"
    max_age_ms: float = 200.0  # a command older than this describes a moment that has passed
    box_margin_m: float = 0.05  # a pose target further outside the box than this is a mistake, not a clip
    over_limit_factor: float = 2.0  # a twist over this x the speed limit is a mistake, not a clip
    rejected: Counter = field(default_factory=Counter)
    estop: bool = False

    def _reject(self, reason: str) -> str:
        self.rejected[reason] += 1
        return reason

    def _common(self, frame_id: str, age_ms: float, values: np.ndarray) -> str | None:
        if self.estop:
            return self._reject("estop")
        if not np.all(np.isfinite(values)):
            return self._reject("nonfinite")
        if frame_id not in (self.frame_id, ""):
            return self._reject("frame")
        if age_ms > self.max_age_ms or age_ms < -self.max_age_ms:  # from the future: a clock is wrong
            return self._reject("stale")
        return None

    def check_pose(self, pos_m, quat_xyzw, frame_id: str, age_ms: float) -> str | None:
        """None when the pose target may go to the arm, else the reason it was rejected."""
        pos_m, quat_xyzw = np.asarray(pos_m, float), np.asarray(quat_xyzw, float)
        reason = self._common(frame_id, age_ms, np.concatenate([pos_m, quat_xyzw]))
        if reason:
            return reason
        if abs(np.linalg.norm(quat_xyzw) - 1.0) > 0.01:
            return self._reject("quaternion")
        margin = self.box_margin_m
        if np.any(pos_m < self.safety.box_low_m - margin) or np.any(pos_m > self.safety.box_high_m + margin):
            return self._reject("outside_workspace")
        return None

    def check_twist(self, twist, frame_id: str, age_ms: float) -> str | None:
        twist = np.asarray(twist, float)
        reason = self._common(frame_id, age_ms, twist)
        if reason:
            return reason
        if np.linalg.norm(twist[:3]) > self.over_limit_factor * self.safety.max_speed_m_s:
            return self._reject("over_limit")
        if np.linalg.norm(twist[3:]) > self.over_limit_factor * self.safety.max_angular_speed_rad_s:
            return self._reject("over_limit")
        return None

    def check_gripper(self, command: float) -> str | None:
        if self.estop:
            return self._reject("estop")
        if not np.isfinite(command):
            return self._reject("nonfinite")
        if not -1.0 <= command <= 1.0:
            return self._reject("over_limit")
        return None
