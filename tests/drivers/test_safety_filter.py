"""SafetyFilter, Watchdog and SafetyConfig on their own (no arm): the limits as arithmetic."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from drivers.arms.base import ArmMode, ArmState
from drivers.arms.rotations import angle_between
from drivers.safety import SafetyConfig, SafetyConfigError, SafetyFilter, Watchdog

CONFIG = SafetyConfig(
    workspace_box_m=((0.3, -0.3, 0.1), (0.7, 0.3, 0.6)),
    max_speed_m_s=0.1,
    max_angular_speed_rad_s=0.5,
    max_accel_m_s2=0.5,
    command_timeout_ms=200,
    command_rate_hz=10,
)
DOWN = np.array([1.0, 0.0, 0.0, 0.0])
START = np.array([0.5, 0.0, 0.4])


def run(filt: SafetyFilter, target, steps: int, dt_s: float = 0.1, quat=DOWN):
    out = []
    for k in range(steps):
        out.append(filt.pose(target, quat, stamp_ns=int((k + 1) * dt_s * 1e9)))
    return out


def fresh() -> SafetyFilter:
    filt = SafetyFilter(CONFIG)
    filt.reset(START, DOWN)
    return filt


def test_speed_accel_limits_and_stop_without_overshoot():
    filt = fresh()
    target = START + [0.0, 0.2, 0.0]
    poses = np.array([p for p, _ in run(filt, target, 40)])
    steps = np.linalg.norm(np.diff(np.vstack([START, poses]), axis=0), axis=1)
    assert steps.max() <= CONFIG.max_speed_m_s * 0.1 + 1e-12
    assert np.all(np.abs(np.diff(steps / 0.1)) <= CONFIG.max_accel_m_s2 * 0.1 + 1e-9)  # speed changes by <= a*dt
    assert steps[0] == pytest.approx(CONFIG.max_accel_m_s2 * 0.1 * 0.1)  # from rest: one period of max accel
    assert np.all(np.diff(poses[:, 1]) >= -1e-12) and poses[:, 1].max() <= target[1] + 1e-12  # never past the target
    assert np.allclose(poses[-1], target)
    assert filt.counters.limited_speed > 0 and filt.counters.limited_accel > 0


def test_workspace_box_clips_and_counts():
    filt = fresh()
    pos, _ = run(filt, [2.0, -2.0, -1.0], 200)[-1]
    assert np.allclose(pos, [0.7, -0.3, 0.1])
    assert filt.counters.clipped_workspace > 0


def test_rotation_speed_is_limited():
    filt = fresh()
    quarter_turn = np.array([np.sqrt(0.5), np.sqrt(0.5), 0.0, 0.0])  # 90 deg about z after pointing down
    quats = [q for _, q in run(filt, START, 40, quat=quarter_turn)]
    angles = [angle_between(a, b) for a, b in zip([DOWN] + quats[:-1], quats)]
    assert max(angles) <= CONFIG.max_angular_speed_rad_s * 0.1 + 1e-9
    assert angle_between(quats[-1], quarter_turn) < 1e-6


@pytest.mark.parametrize("pos, quat", [([np.nan, 0, 0.4], DOWN), ([0.5, np.inf, 0.4], DOWN), (START, [0, 0, 0, 0]), ([0.5, 0.0], DOWN)])
def test_nonfinite_or_malformed_targets_are_rejected(pos, quat):
    filt = fresh()
    assert filt.pose(pos, quat, stamp_ns=100_000_000) is None
    assert filt.counters.rejected_nonfinite == 1
    assert np.allclose(filt.last_target_m, START)


def test_twist_is_limited_and_kept_inside_the_box():
    filt = SafetyFilter(CONFIG)
    twist = filt.twist([0.0, 0.0, 1.0, 0.0, 0.0, 2.0], ee_pos_m=np.array([0.5, 0.0, 0.4]), stamp_ns=0)
    assert np.linalg.norm(twist[:3]) <= CONFIG.max_accel_m_s2 * 0.1 + 1e-12  # from rest, first period
    assert np.linalg.norm(twist[3:]) == pytest.approx(CONFIG.max_angular_speed_rad_s)
    at_top = filt.twist([0.0, 0.05, 0.05, 0, 0, 0], ee_pos_m=np.array([0.5, 0.0, 0.6]), stamp_ns=100_000_000)
    assert at_top[2] == 0.0 and at_top[1] > 0  # no further up, sideways still allowed
    assert filt.twist([np.nan] * 6, ee_pos_m=START, stamp_ns=200_000_000) is None


def test_joint_velocity_is_clipped_and_stops_outside_the_box():
    filt = SafetyFilter(CONFIG)
    dq = filt.joint_velocity([0, 0, 0, 0, 0, 0, 5.0], ee_pos_m=START)
    assert dq[6] == CONFIG.max_joint_speed_rad_s
    assert np.all(filt.joint_velocity([0.1] * 7, ee_pos_m=np.array([0.9, 0.0, 0.4])) == 0)


def test_force_threshold():
    def state(force_n):
        return ArmState(0, np.zeros(7), np.zeros(7), START, DOWN, np.zeros(6), np.array([0, 0, force_n, 0, 0, 0.0]), 0.04, ArmMode.IDLE)

    filt = SafetyFilter(CONFIG)
    assert not filt.force_exceeded(state(CONFIG.max_force_n - 1))
    assert filt.force_exceeded(state(CONFIG.max_force_n + 1))


def test_watchdog_fires_once_per_silence_and_rearms():
    fired = []
    with Watchdog(timeout_ms=50, on_timeout=lambda: fired.append(time.monotonic()), period_ms=2) as wd:
        time.sleep(0.1)
        assert wd.timeouts == 0  # never kicked: nothing to time out
        for _ in range(10):
            time.sleep(0.01)
            wd.kick()
        t_last = time.monotonic()
        time.sleep(0.2)
        assert wd.timeouts == 1
        # fires after the timeout, within a few monitor periods (measured 50-53 ms)
        assert 0.050 <= fired[0] - t_last < 0.090
        assert 50 <= wd.last_fire_delay_ms < 90
        wd.kick()
        time.sleep(0.1)
        assert wd.timeouts == 2 and wd.last_timeout_ns is not None


def test_watchdog_survives_a_failing_callback():
    calls = threading.Event()

    def boom():
        calls.set()
        raise RuntimeError("device gone")

    with Watchdog(timeout_ms=10, on_timeout=boom, period_ms=2) as wd:
        wd.kick()
        assert calls.wait(1.0)
        time.sleep(0.01)
        assert wd.errors == 1
        wd.kick()
        time.sleep(0.05)
        assert wd.timeouts == 2


def test_config_errors_name_file_and_field(tmp_path):
    bad = tmp_path / "franka_safety.yaml"
    bad.write_text("max_speed_m_s: -1\n")
    with pytest.raises(SafetyConfigError, match=r"franka_safety\.yaml: field 'max_speed_m_s'"):
        SafetyConfig.from_yaml(bad)
    bad.write_text("workspace_box_m: [[0.7, 0, 0], [0.3, 1, 1]]\n")
    with pytest.raises(SafetyConfigError, match="workspace_box_m"):
        SafetyConfig.from_yaml(bad)
    bad.write_text("max_sped_m_s: 1\n")
    with pytest.raises(SafetyConfigError, match="max_sped_m_s"):
        SafetyConfig.from_yaml(bad)
    with pytest.raises(SafetyConfigError, match="does not exist"):
        SafetyConfig.from_yaml(tmp_path / "missing.yaml")
    good = tmp_path / "ok.yaml"
    good.write_text("max_force_n: 25\ncommand_timeout_ms: 150\n")
    assert SafetyConfig.from_yaml(good).max_force_n == 25
