"""FastRLAP's autonomous practice: detect a crash or a stuck car, then back out without a person."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RecoveryConfig:
    stuck_window_steps: int = 20  # 2 s at 10 Hz
    stuck_progress_m: float = 0.3  # less progress along the track than this over the window = stuck
    crash_accel_m_s2: float = 30.0  # above any driving acceleration (μg ≈ 7.4 m/s²); a wall hit at 1 m/s gives ≈100
    crash_impact_m_s: float = 0.3  # edge contact counts as a crash above this speed into the edge (grazing does not)
    reverse_steps: int = 10  # FastRLAP: 1 s of reverse
    reverse_speed: float = -0.6  # speed action while reversing


class CrashStuckDetector:
    """Feed it once per control step; it names the event that calls for a recovery, if any."""

    def __init__(self, config: RecoveryConfig = RecoveryConfig()):
        self.config = config
        self.progress_m: deque[float] = deque(maxlen=config.stuck_window_steps)

    def reset(self) -> None:
        self.progress_m.clear()

    def update(self, progress_m: float, peak_accel_m_s2: float, edge_contact: bool) -> str | None:
        """``progress_m``: distance gained along the track in this step (negative when going backwards)."""
        if edge_contact or peak_accel_m_s2 > self.config.crash_accel_m_s2:
            return "crash"
        self.progress_m.append(progress_m)
        if len(self.progress_m) == self.progress_m.maxlen and sum(self.progress_m) < self.config.stuck_progress_m:
            return "stuck"
        return None


def recovery_actions(rng: np.random.Generator, config: RecoveryConfig = RecoveryConfig()) -> np.ndarray:
    """(reverse_steps, 2) [speed, steer] actions: reverse with one random steering angle held."""
    actions = np.empty((config.reverse_steps, 2), np.float32)
    actions[:, 0] = config.reverse_speed
    actions[:, 1] = rng.uniform(-1.0, 1.0)
    return actions
