"""Helpers shared by the arm tests: drive to a pose, sample motion at a fixed rate."""

from __future__ import annotations

import time

import numpy as np

# Table under the arm for the force tests; the home TCP is at z = 0.52 m, well above it.
TABLE_TOP_Z_M = 0.40
# franky-sim's start pose (also MujocoArm's): TCP position and orientation (pointing down)
HOME_POS_M = np.array([0.5544, 0.0, 0.5214])
HOME_QUAT_XYZW = np.array([1.0, 0.0, 0.0, 0.0])


def drive_to(arm, pos_m, quat_xyzw, timeout_s: float = 6.0, tol_m: float = 0.002, rate_hz: float = 20.0) -> float:
    """Stream one pose target until the TCP is within tol_m and at rest; returns the final error (m)."""
    pos_m = np.asarray(pos_m, dtype=float)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        arm.command_pose(pos_m, quat_xyzw)
        time.sleep(1.0 / rate_hz)
        state = arm.state()
        error_m = float(np.linalg.norm(state.ee_pos_m - pos_m))
        if error_m < tol_m and np.linalg.norm(state.ee_twist[:3]) < 0.005:
            return error_m
    return error_m


def track_circle(arm, center_m, quat_xyzw, radius_m=0.04, period_s=2.0, duration_s=3.0, rate_hz=10.0) -> np.ndarray:
    """Stream a horizontal circle at the policy rate; returns the TCP-to-target distance just before each new target (m).

    At 10 Hz a target moving at 2*pi*r/T is a step of up to 12.6 mm for r = 4 cm, T = 2 s, so the
    error sampled at the end of a step measures lag plus that step.
    """
    center_m = np.asarray(center_m, dtype=float)
    errors = []
    t0 = time.monotonic()
    for k in range(int(duration_s * rate_hz)):
        phase = 2 * np.pi * k / (period_s * rate_hz)
        target = center_m + radius_m * np.array([np.sin(phase), 1 - np.cos(phase), 0.0])
        arm.command_pose(target, quat_xyzw)
        time.sleep(max(0.0, t0 + (k + 1) / rate_hz - time.monotonic()))
        errors.append(np.linalg.norm(arm.state().ee_pos_m - target))
    return np.array(errors)


def wait_until_still(arm, timeout_s: float = 3.0, speed_m_s: float = 0.005) -> float:
    """Seconds until the TCP speed drops below speed_m_s (inf on timeout)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if np.linalg.norm(arm.state().ee_twist[:3]) < speed_m_s:
            return time.monotonic() - t0
        time.sleep(0.005)
    return float("inf")
