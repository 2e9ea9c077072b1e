"""Clocks: drivers stamp readings with host `time.monotonic_ns()`; ROS headers carry system (wall) time.

Both clocks are read on the same host, so a monotonic stamp maps to wall time by the current offset.
"""

from __future__ import annotations

import time


def monotonic_to_wall_ns(stamp_ns: int) -> int:
    return time.time_ns() - (time.monotonic_ns() - stamp_ns)


def split_ns(stamp_ns: int) -> tuple[int, int]:
    """(sec, nanosec) of a builtin_interfaces/Time."""
    return stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000


def join_ns(sec: int, nanosec: int) -> int:
    return sec * 1_000_000_000 + nanosec


def age_ms(stamp_wall_ns: int, now_wall_ns: int | None = None) -> float:
    return ((time.time_ns() if now_wall_ns is None else now_wall_ns) - stamp_wall_ns) / 1e6
