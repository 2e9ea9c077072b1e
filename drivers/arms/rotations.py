"""Unit-quaternion helpers in (x, y, z, w) order, the order `ArmState` uses."""

from __future__ import annotations

import numpy as np


def xyzw_to_wxyz(q: np.ndarray) -> np.ndarray:
    return np.array([q[3], q[0], q[1], q[2]], dtype=float)


def wxyz_to_xyzw(q: np.ndarray) -> np.ndarray:
    return np.array([q[1], q[2], q[3], q[0]], dtype=float)


def angle_between(q_a: np.ndarray, q_b: np.ndarray) -> float:
    """Rotation angle (rad) taking q_a to q_b."""
    dot = abs(float(np.dot(q_a, q_b))) / (np.linalg.norm(q_a) * np.linalg.norm(q_b))
    return 2.0 * float(np.arccos(min(1.0, dot)))


def slerp_limited(q_from: np.ndarray, q_to: np.ndarray, max_angle_rad: float) -> tuple[np.ndarray, bool]:
    """Rotate from q_from towards q_to by at most max_angle_rad; returns (quat, was_limited)."""
    q_to = q_to / np.linalg.norm(q_to)
    dot = float(np.dot(q_from, q_to))
    if dot < 0:  # same rotation, shorter way round
        q_to, dot = -q_to, -dot
    angle = 2.0 * np.arccos(min(1.0, dot))
    if angle <= max_angle_rad or angle < 1e-9:
        return q_to, False
    t = max_angle_rad / angle
    half = angle / 2
    q = (np.sin((1 - t) * half) * q_from + np.sin(t * half) * q_to) / np.sin(half)
    return q / np.linalg.norm(q), True
