"""A scripted expert for simulated sessions: drive the TCP to a goal at a capped speed, then let go."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ReachExpert:
    goal_m: np.ndarray
    gain_per_s: float = 2.0
    max_speed_m_s: float = 0.1
    tolerance_m: float = 0.01  # within this of the goal the expert stops intervening

    def __call__(self, ee_pos_m) -> tuple[np.ndarray, float] | None:
        if ee_pos_m is None:
            return None
        error = np.asarray(self.goal_m, float) - np.asarray(ee_pos_m, float)
        if np.linalg.norm(error) < self.tolerance_m:
            return None
        v = self.gain_per_s * error
        speed = np.linalg.norm(v)
        if speed > self.max_speed_m_s:
            v *= self.max_speed_m_s / speed
        return np.concatenate([v, np.zeros(3)]), 0.0
