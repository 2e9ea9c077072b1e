"""Command checks and the dead-man for the vehicle nodes (rc_car, quadrotor), free of ROS.

A command is refused while the e-stop is engaged, when it is not finite or when it is older than
`max_age_ms`; refusals are counted by reason. The dead-man fires once per gap: when no accepted command
arrived for `deadman_timeout_ms` (never before the first one), and re-arms at the next command.
"""

from __future__ import annotations

import math
import time
from collections import Counter


class VehicleGate:
    def __init__(self, deadman_timeout_ms: float, max_age_ms: float, rejected: Counter | None = None):
        if deadman_timeout_ms <= 0 or max_age_ms <= 0:
            raise ValueError("deadman_timeout_ms and max_command_age_ms must be > 0; set them in the node's parameters.")
        self.deadman_timeout_ms, self.max_age_ms = deadman_timeout_ms, max_age_ms
        self.rejected = rejected if rejected is not None else Counter()
        self.estop = False
        self.deadman_trips = 0
        self.accepted = 0
        self._last_command_ns: int | None = None  # monotonic

    def accept(self, values, age_ms: float, now_ns: int | None = None) -> bool:
        """True when the command may go to the vehicle; False counts the reason in `rejected`."""
        if self.estop:
            reason = "estop"
        elif not all(math.isfinite(float(v)) for v in values):
            reason = "nonfinite"
        elif age_ms > self.max_age_ms:
            reason = "stale"
        elif age_ms < -self.max_age_ms:
            reason = "future_stamp"  # a clock far ahead would keep a dead command fresh forever
        else:
            self._last_command_ns = time.monotonic_ns() if now_ns is None else now_ns
            self.accepted += 1
            return True
        self.rejected[reason] += 1
        return False

    def deadman_due(self, now_ns: int | None = None) -> bool:
        """True once when commands stopped for longer than the timeout: the caller brakes / stops."""
        if self._last_command_ns is None:
            return False
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        if (now_ns - self._last_command_ns) / 1e6 <= self.deadman_timeout_ms:
            return False
        self._last_command_ns = None  # fired: nothing left to guard until the next command
        self.deadman_trips += 1
        return True

    def clear(self) -> None:
        """Forget the last command (after the e-stop): the dead-man re-arms at the next one."""
        self._last_command_ns = None
