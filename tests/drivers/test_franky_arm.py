"""FrankyArm against a franky-sim server on loopback: libfranka's real protocol, MuJoCo physics."""

from __future__ import annotations

import time

import numpy as np
import pytest
from arm_motion import HOME_POS_M, HOME_QUAT_XYZW, drive_to, track_circle, wait_until_still

from drivers.arms.base import ArmMode
from drivers.arms.rotations import angle_between
from drivers.errors import ArmFaultError, DeviceConnectionError

pytest.importorskip("franky", reason="franky-control is not installed (pip install franky-control)")
from drivers.arms.franky_arm import FrankyArm  # noqa: E402


@pytest.fixture
def arm(franky_sim_host):
    with FrankyArm(franky_sim_host, realtime="ignore") as arm:
        drive_to(arm, HOME_POS_M, HOME_QUAT_XYZW)
        arm.hold()
        yield arm


def test_state_is_typed_and_stamped(arm):
    first, second = arm.state(), arm.state()
    assert first.joint_pos_rad.shape == (7,) and first.joint_vel_rad_s.shape == (7,)
    assert first.ee_twist.shape == (6,) and first.ee_wrench.shape == (6,)
    assert second.stamp_ns > first.stamp_ns
    assert first.mode is ArmMode.IDLE and first.fault is None
    # franky-sim starts at q = (0, 0, 0, -1.57, 0, 1.57, 0.785): TCP 0.554 m ahead, pointing down
    assert np.linalg.norm(first.ee_pos_m - HOME_POS_M) < 0.003
    assert angle_between(first.ee_quat_xyzw, HOME_QUAT_XYZW) < 0.01
    assert 0.0 <= first.gripper_width_m <= 0.08


@pytest.mark.parametrize("pose_controller", ["waypoint", "impedance"])
def test_follows_streamed_cartesian_targets(franky_sim_host, pose_controller):
    with FrankyArm(franky_sim_host, realtime="ignore", pose_controller=pose_controller) as arm:
        errors_m = track_circle(arm, HOME_POS_M, HOME_QUAT_XYZW)
        final_m = drive_to(arm, HOME_POS_M, HOME_QUAT_XYZW, tol_m=0.001, timeout_s=3.0)
        arm.hold()
    print(f"\n{pose_controller}: 10 Hz circle r=4 cm T=2 s: error mean {errors_m.mean()*1e3:.1f} mm, max {errors_m.max()*1e3:.1f} mm; settled {final_m*1e3:.2f} mm")
    # Measured idle: waypoint mean 2-3 mm / max 5 mm, impedance mean 20 mm / max 33 mm (1000 N/m lags the
    # moving target); under two other busy processes on the 2 cores waypoint reached max 47 mm because
    # the server's 1 kHz loop slows. Bounds: the 12.6 mm step plus that worst lag, with margin.
    bound_mean_m, bound_max_m = (0.03, 0.06) if pose_controller == "waypoint" else (0.045, 0.08)
    assert errors_m.mean() < bound_mean_m and errors_m.max() < bound_max_m
    # At rest both controllers settle on the target (measured < 0.1 mm waypoint, ~5 mm impedance w/o integrator).
    assert final_m < 0.006


def test_velocity_commands_move_and_expire(arm):
    # Distances are checked against the robot's own clock: under CPU load franky-sim runs slower than
    # the wall clock (measured 0.6-0.7x real time with two other busy processes on the 2 cores).
    start = arm.state()
    for _ in range(5):  # 0.5 s at 5 cm/s up
        arm.command_cartesian_velocity([0.0, 0.0, 0.05, 0.0, 0.0, 0.0])
        time.sleep(0.1)
    end = arm.state()
    robot_s = (end.robot_time_ns - start.robot_time_ns) / 1e9
    moved_m = end.ee_pos_m[2] - start.ee_pos_m[2]
    # without a refresh the motion ends by itself after velocity_command_ttl_ms (200 ms) plus braking
    still_after_s = wait_until_still(arm)
    print(f"\ncartesian velocity 5 cm/s for {robot_s:.2f} s robot time: moved {moved_m*1e3:.1f} mm; still {still_after_s*1e3:.0f} ms after the last command")
    # measured 0.85-0.95 of v*t: the motion generator ramps up over the first ~30 ms
    assert 0.7 * 0.05 * robot_s < moved_m < 1.1 * 0.05 * robot_s
    assert still_after_s < 1.0

    start = arm.state()
    for _ in range(5):
        arm.command_joint_velocity([0, 0, 0, 0, 0, 0, 0.3])
        time.sleep(0.1)
    end = arm.state()
    arm.hold()
    robot_s = (end.robot_time_ns - start.robot_time_ns) / 1e9
    turned_rad = end.joint_pos_rad[6] - start.joint_pos_rad[6]
    print(f"joint velocity 0.3 rad/s for {robot_s:.2f} s robot time: turned {turned_rad:.3f} rad")
    assert 0.6 * 0.3 * robot_s < turned_rad < 1.3 * 0.3 * robot_s
    assert arm.state().mode is ArmMode.IDLE


def test_gripper_open_close_grasp(arm):
    assert arm.gripper.open()
    assert arm.gripper.width_m() > 0.075
    # franky-sim's hand reports success once the fingers settle at the requested width (no object needed)
    assert arm.gripper.grasp(0.03, 20.0)
    assert abs(arm.gripper.width_m() - 0.03) < 0.005
    assert arm.gripper.close()
    assert arm.gripper.width_m() < 0.005
    arm.gripper.open()


def test_unreachable_robot_is_one_sentence():
    with pytest.raises(DeviceConnectionError, match=r"could not reach the Franka at 127\.0\.0\.253 .*FCI"):
        FrankyArm("127.0.0.253", realtime="ignore", gripper=False).connect()


def test_connection_loss_becomes_a_fault():
    from drivers.arms.franky_sim_twin import FrankySimProcess

    server = FrankySimProcess()
    host = server.start()
    try:
        arm = FrankyArm(host, realtime="ignore", gripper=False)
        arm.connect()
        start = arm.state()
        arm.command_pose(start.ee_pos_m + [0.0, 0.02, 0.0], start.ee_quat_xyzw)
        time.sleep(0.1)
        server.kill()
        t_kill = time.monotonic()
        while arm.state().fault is None and time.monotonic() - t_kill < 5.0:
            time.sleep(0.05)
        detect_s = time.monotonic() - t_kill
        state = arm.state()
        print(f"\nconnection loss detected {detect_s*1e3:.0f} ms after the server died")
        assert state.mode is ArmMode.FAULT and not state.fault.recoverable
        assert "lost the connection" in state.fault.reason
        assert detect_s < 3.0  # libfranka's UDP receive timeout is 1 s (measured ~1.0-1.1 s)
        with pytest.raises(ArmFaultError, match="lost the connection"):
            arm.command_pose(start.ee_pos_m, start.ee_quat_xyzw)
        arm.close()
    finally:
        server.stop()
