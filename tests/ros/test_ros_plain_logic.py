"""The plain-Python objects behind the ROS nodes, tested without ROS (they import no rclpy)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "ros_ws" / "src" / "robot_rl_ros"))

from drivers.safety import SafetyConfig  # noqa: E402
from robot_rl_ros.actor_core import ActorCore  # noqa: E402
from robot_rl_ros.assembly import ObservationAssembler  # noqa: E402
from robot_rl_ros.command_gate import CommandGate  # noqa: E402
from robot_rl_ros.health import NodeHealth, PeriodMeter  # noqa: E402
from robot_rl_ros.image_check import image_array  # noqa: E402
from robot_rl_ros.launch_plan import plan, plan_from_session  # noqa: E402
from robot_rl_ros.reach_expert import ReachExpert  # noqa: E402

MS = 1_000_000


def test_assembler_uses_newest_fresh_data_and_names_silent_topics():
    asm = ObservationAssembler(["/pose", "/image"], max_age_ms=100)
    asm.put("/pose", "p1", 1000 * MS)
    assert asm.assemble(1010 * MS) == (None, ["/image"])
    asm.put("/image", "i1", 1005 * MS)
    asm.put("/pose", "p0", 990 * MS)  # late and older: ignored
    assert asm.assemble(1050 * MS) == ({"/pose": "p1", "/image": "i1"}, [])
    assert asm.skew_ms() == pytest.approx(5.0)
    assert asm.assemble(1101 * MS) == (None, ["/pose"])  # 101 ms old


def test_command_gate_counts_each_reason():
    gate = CommandGate(SafetyConfig(), "base", max_age_ms=200)
    ok = np.array([0.5, 0.0, 0.3]), np.array([0.0, 0.0, 0.0, 1.0])
    assert gate.check_pose(*ok, "base", 10.0) is None
    assert gate.check_pose(*ok, "base", 500.0) == "stale"
    assert gate.check_pose(*ok, "base", -500.0) == "stale"
    assert gate.check_pose(*ok, "world", 0.0) == "frame"
    assert gate.check_pose(np.array([np.nan, 0, 0.3]), ok[1], "base", 0.0) == "nonfinite"
    assert gate.check_pose(np.array([1.5, 0, 0.3]), ok[1], "base", 0.0) == "outside_workspace"
    assert gate.check_pose(np.array([0.77, 0, 0.3]), ok[1], "base", 0.0) is None  # within the margin: the filter clips it
    assert gate.check_pose(ok[0], np.array([0, 0, 0, 2.0]), "base", 0.0) == "quaternion"
    assert gate.check_twist(np.array([1.0, 0, 0, 0, 0, 0]), "base", 0.0) == "over_limit"
    assert gate.check_gripper(3.0) == "over_limit"
    gate.estop = True
    assert gate.check_twist(np.zeros(6), "base", 0.0) == "estop"
    assert dict(gate.rejected) == {"stale": 2, "frame": 1, "nonfinite": 1, "outside_workspace": 1, "quaternion": 1, "over_limit": 2, "estop": 1}


def _image(encoding, height, width, step, data):
    return types.SimpleNamespace(encoding=encoding, height=height, width=width, step=step, data=data)


def test_image_check_rejects_wrong_encoding_size_and_nan_depth():
    rgb = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    array, reason = image_array(_image("rgb8", 4, 6, 18, rgb.tobytes()), "rgb8", (4, 6))
    assert reason is None and np.array_equal(array, rgb)
    padded = np.zeros((4, 20), np.uint8)
    padded[:, :18] = rgb.reshape(4, 18)  # rows padded to a 20-byte step
    assert np.array_equal(image_array(_image("rgb8", 4, 6, 20, padded.tobytes()), "rgb8")[0], rgb)
    assert image_array(_image("bgr8", 4, 6, 18, rgb.tobytes()), "rgb8") == (None, "encoding")
    assert image_array(_image("rgb8", 4, 6, 18, rgb.tobytes()[:-1]), "rgb8") == (None, "size")
    assert image_array(_image("rgb8", 4, 6, 18, rgb.tobytes()), "rgb8", (5, 6)) == (None, "size")
    depth = np.ones((2, 2), np.float32)
    depth[0, 0] = np.nan
    assert image_array(_image("32FC1", 2, 2, 8, depth.tobytes()), "32FC1") == (None, "nonfinite")


def _core(policy):
    return ActorCore(policy, ["ee_pos", "gripper_width"], "/ee_pose", "/joint_states", {"front": "/image"}, max_age_ms=100,
                     twist_dims=3, gripper_index=3, expected_state_dim=4)


def test_actor_core_holds_acts_and_mixes():
    seen = {}

    def policy(obs):
        seen.update(obs)
        return np.array([0.1, 0.0, -0.1, 0.7])

    core = _core(policy)
    assert core.step(0).silent == ["/ee_pose", "/joint_states", "/image"]
    core.assembler.put("/ee_pose", {"pos": np.array([0.5, 0, 0.3]), "quat": np.array([0, 0, 0, 1.0])}, 0)
    core.assembler.put("/joint_states", np.r_[np.zeros(7), 0.04], 0)
    core.assembler.put("/image", np.zeros((2, 2, 3), np.uint8), 0)
    decision = core.step(50 * MS)
    assert np.allclose(decision.twist, [0.1, 0, -0.1, 0, 0, 0]) and decision.gripper == pytest.approx(0.7) and not decision.intervened
    assert np.allclose(seen["state"], [0.5, 0, 0.3, 0.04]) and seen["front"].shape == (2, 2, 3)
    takeover = core.intervention(np.array([0, 0.05, 0, 0, 0, 0]), 0.0, engaged=True, twist_age_ms=10)
    decision = core.step(50 * MS, takeover)
    assert decision.intervened and np.allclose(decision.twist[:3], [0, 0.05, 0]) and np.allclose(decision.policy_action, [0.1, 0, -0.1, 0.7])
    assert np.allclose(core.executed_action(decision), [0, 0.05, 0, 0.7])  # what the learner is told was done
    assert core.intervention(np.zeros(6), 0.0, engaged=True, twist_age_ms=500) is None  # a stale takeover does not count
    assert core.step(150 * MS).silent == ["/ee_pose", "/joint_states", "/image"]


def test_actor_core_refuses_a_state_layout_the_policy_does_not_read():
    with pytest.raises(ValueError, match="expects 7"):
        ActorCore(lambda o: np.zeros(3), ["ee_pos"], "/p", "/j", {}, 100, expected_state_dim=7)


def test_actor_core_never_commands_a_nonfinite_action():
    core = _core(lambda obs: np.array([np.nan, 0, 0, 0]))
    for topic, value in [("/ee_pose", {"pos": np.zeros(3), "quat": np.array([0, 0, 0, 1.0])}), ("/joint_states", np.zeros(8)), ("/image", np.zeros((1, 1, 3)))]:
        core.assembler.put(topic, value, 0)
    decision = core.step(0)
    assert np.all(decision.twist == 0) and decision.silent


def test_health_values_and_period_meter():
    health = NodeHealth()
    health.reject("stale")
    health.reject("stale")
    health.ages_ms["/image"] = 12.345
    assert health.values()["rejected.stale"] == "2" and health.values()["rejected.total"] == "2" and health.values()["age_ms./image"] == "12.3"
    meter = PeriodMeter(rate_hz=10)
    for t_ms in [0, 100, 200, 360, 460]:
        meter.tick(t_ms * MS)
    assert meter.deadline_misses == 1 and meter.max_jitter_ms == pytest.approx(60.0)


def test_reach_expert_points_at_the_goal_at_capped_speed():
    expert = ReachExpert(np.array([0.5, 0.0, 0.3]), max_speed_m_s=0.1)
    twist, gripper = expert(np.array([0.3, 0.0, 0.3]))
    assert np.allclose(twist, [0.1, 0, 0, 0, 0, 0])
    assert expert(np.array([0.5, 0.0, 0.305])) is None and expert(None) is None


def test_launch_plan_maps_robots_and_sessions_to_nodes(tmp_path):
    nodes = {n.name: n for n in plan("sim_franka", "/runs/x/exports/policy.onnx", rate_hz=20)}
    assert set(nodes) == {"camera", "arm", "teleop", "actor"}
    assert nodes["camera"].namespace == "camera" and nodes["arm"].parameters["backend"] == "mujoco"
    assert nodes["actor"].parameters["policy_path"] == "/runs/x/exports/policy.onnx" and nodes["actor"].parameters["rate_hz"] == 20.0
    real = {n.name: n for n in plan("real_franka")}
    assert (real["camera"].parameters["backend"], real["arm"].parameters["backend"], real["teleop"].parameters["backend"]) == ("realsense", "franky", "spacemouse")
    session = Path(__file__).resolve().parents[2] / "launch" / "sim_pick_cube_pixels.yaml"
    from_session = {n.name: n for n in plan_from_session(session, tmp_path)}
    assert from_session["actor"].parameters["policy_path"] == str(tmp_path / "exports" / "policy.onnx")
    with pytest.raises(ValueError, match="no parameter file"):
        plan("spot")


def test_no_rclpy_below_the_core_folders():
    repo = Path(__file__).resolve().parents[2]
    offenders = [str(p.relative_to(repo)) for folder in ("robot_rl", "drivers", "policies", "sim2real", "calibration")
                 for p in (repo / folder).rglob("*.py") if "rclpy" in p.read_text()]
    assert offenders == []
