"""A scripted expert as an intervention device, for simulation: any callable policy takes over."""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np

from drivers.arms.base import now_ns
from drivers.teleop.base import InterventionDevice, TeleopReading, idle_reading

# expert(observation) -> (twist (6,), gripper in [-1, 1]) to intervene, or None to leave the policy alone
ExpertPolicy = Callable[[Any], "tuple[np.ndarray, float] | None"]


class ScriptedDevice(InterventionDevice):
    name = "scripted"

    def __init__(self, expert: ExpertPolicy):
        self.expert = expert
        self._observation: Any = None
        self._lock = threading.Lock()
        self.calls = 0

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def observe(self, observation: Any) -> None:
        """Give the expert the newest observation (the env loop calls this each step)."""
        with self._lock:
            self._observation = observation

    def read(self) -> TeleopReading:
        with self._lock:
            observation = self._observation
        self.calls += 1
        action = self.expert(observation)
        stamp_ns = now_ns()
        if action is None:
            return idle_reading(self.name, stamp_ns)
        twist, gripper = action
        twist = np.asarray(twist, dtype=float).reshape(6)
        if not np.all(np.isfinite(twist)):
            return idle_reading(self.name, stamp_ns)  # a broken expert never moves the arm
        return TeleopReading(stamp_ns, twist, float(np.clip(gripper, -1.0, 1.0)), True, (), self.name)
