"""actor_node in its own process, fed through topics: assembly by timestamp, holding on a silent topic,
bad images rejected with a reason, interventions mixed; and a short end-to-end sim session
(camera_node + arm_node + actor_node, three processes) checking the commanded motion."""

from __future__ import annotations

import time

import numpy as np
import pytest
from ros_harness import NodeProcess, Probe, diagnostic_values, isolate_domain, require_rclpy

require_rclpy()
isolate_domain()

import rclpy  # noqa: E402
import torch  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped, TwistStamped  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Bool, Float64  # noqa: E402

from policies.export.onnx_export import export_onnx  # noqa: E402
from robot_rl_ros.camera_node import image_msg  # noqa: E402
from robot_rl_ros.ros_io import COMMAND_QOS, SENSOR_QOS, STATE_QOS, header  # noqa: E402

torch.set_num_threads(1)
H, W = 48, 64
FIXED_ACTION = [0.04, 0.0, 0.0, 0.5]  # vx m/s, vy, vz, gripper


class FixedPolicy(torch.nn.Module):
    """Zero weights plus a bias: a real network (state and image are read) whose output is known."""

    def __init__(self):
        super().__init__()
        self.head = torch.nn.Linear(8, 4)
        torch.nn.init.zeros_(self.head.weight)
        self.head.bias.data = torch.tensor(FIXED_ACTION)

    def forward(self, obs):
        brightness = obs["wrist"].float().mean(dim=(1, 2, 3))[:, None]
        return self.head(obs["state"]) + 0.0 * brightness


@pytest.fixture(scope="module")
def policy_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "fixed.onnx"
    rng = np.random.default_rng(0)
    parity = {"state": rng.normal(size=(4, 8)).astype(np.float32), "wrist": rng.integers(0, 255, (4, H, W, 3), dtype=np.uint8)}
    spec = {"obs_spec": {"state_dim": 8, "image_shapes": {"wrist": [H, W, 3]}, "state_keys": []}, "control_hz": 10}
    export_onnx(FixedPolicy(), spec, path, parity)
    return str(path)


@pytest.fixture(scope="module")
def probe():
    rclpy.init()
    probe = Probe("actor_probe")
    yield probe
    probe.close()
    rclpy.shutdown()


def actor_params(policy_path: str) -> dict:
    return {"policy_path": policy_path, "rate_hz": 10.0, "max_obs_age_ms": 300.0, "state_fields": ["ee_pos", "ee_quat", "gripper_width"],
            "image_keys": ["wrist"], "image_topics": ["/camera/image_raw"], "twist_dims": 3, "gripper_index": 3}


def test_actor_assembles_holds_rejects_and_mixes(probe, policy_path, tmp_path):
    actor = NodeProcess("actor_node", actor_params(policy_path), tmp_path, namespace="/unit")
    try:
        twists = probe.listen(TwistStamped, "/unit/target_twist", COMMAND_QOS)
        grippers = probe.listen(Float64, "/unit/gripper_command", COMMAND_QOS)
        intervened = probe.listen(Bool, "/unit/actor/intervened", COMMAND_QOS)
        diagnostics = probe.listen(DiagnosticArray, "/diagnostics", QoSProfile(depth=50))
        pose_pub = probe.node.create_publisher(PoseStamped, "/unit/ee_pose", STATE_QOS)
        joints_pub = probe.node.create_publisher(JointState, "/unit/joint_states", STATE_QOS)
        image_pub = probe.node.create_publisher(Image, "/camera/image_raw", SENSOR_QOS)
        teleop_pub = probe.node.create_publisher(TwistStamped, "/unit/teleop/twist", COMMAND_QOS)
        engaged_pub = probe.node.create_publisher(Bool, "/unit/teleop/engaged", COMMAND_QOS)
        good_image = np.full((H, W, 3), 100, np.uint8)

        def feed(image: np.ndarray | None = None, encoding: str = "rgb8"):
            now = time.time_ns()
            pose = PoseStamped(header=header(now, "base"))
            pose.pose.position.x, pose.pose.position.z, pose.pose.orientation.w = 0.5, 0.3, 1.0
            pose_pub.publish(pose)
            joints_pub.publish(JointState(header=header(now, "base"), name=[f"j{i}" for i in range(8)], position=[0.0] * 7 + [0.04]))
            if image is not None:
                image_pub.publish(image_msg(image, encoding, header(now, "camera")))

        def status():
            return diagnostic_values(diagnostics, "actor")

        # 1. no image at all: hold (zero twist) and name the silent topic
        assert probe.spin_until(lambda: (feed(), status())[1] is not None and "/camera/image_raw" in status()[1], 20.0, [actor]), actor.log()
        assert status()[0] == 2 and twists and np.allclose([twists[-1].twist.linear.x, twists[-1].twist.linear.y], 0.0)
        # 2. wrong encoding and wrong size are rejected with their reasons; the actor keeps holding
        assert probe.spin_until(lambda: (feed(good_image, "bgr8"), feed(np.zeros((H + 1, W, 3), np.uint8)),
                                         int(status()[2].get("rejected./camera/image_raw.encoding", 0)) > 0
                                         and int(status()[2].get("rejected./camera/image_raw.size", 0)) > 0)[-1], 5.0, [actor]), status()
        assert twists[-1].twist.linear.x == 0.0
        # 3. every topic fresh: the policy's action is commanded
        assert probe.spin_until(lambda: (feed(good_image), twists[-1].twist.linear.x > 0)[-1], 5.0, [actor])
        assert probe.spin_until(lambda: bool(grippers), 1.0)
        assert twists[-1].twist.linear.x == pytest.approx(FIXED_ACTION[0], abs=1e-6) and grippers[-1].data == pytest.approx(0.5)
        assert intervened[-1].data is False
        # 4. an engaged intervention replaces the policy's twist
        def intervene():
            feed(good_image)
            msg = TwistStamped(header=header(time.time_ns(), "base"))
            msg.twist.linear.y = 0.02
            teleop_pub.publish(msg)
            engaged_pub.publish(Bool(data=True))
            return bool(intervened) and intervened[-1].data

        assert probe.spin_until(intervene, 5.0, [actor])
        assert twists[-1].twist.linear.y == pytest.approx(0.02) and twists[-1].twist.linear.x == 0.0
        engaged_pub.publish(Bool(data=False))
        # 5. the camera goes quiet: within max_obs_age_ms + a tick the actor holds again
        probe.spin_for(0.1)
        quiet_since = time.monotonic()
        assert probe.spin_until(lambda: (feed(), twists[-1].twist.linear.x == 0.0 and twists[-1].twist.linear.y == 0.0)[-1], 3.0, [actor])
        assert time.monotonic() - quiet_since < 0.3 + 0.1 + 0.3  # max age + one period + delivery slack
    finally:
        assert actor.stop() == 0, actor.log()


def test_end_to_end_sim_session_moves_the_arm_as_the_policy_commands(probe, policy_path, tmp_path):
    arm = NodeProcess("arm_node", {"backend": "mujoco", "state_rate_hz": 50.0}, tmp_path)
    camera = NodeProcess("camera_node", {"backend": "sim", "width": W, "height": H, "fps": 10.0}, tmp_path, namespace="/camera")
    nodes = [arm, camera]
    try:
        poses = probe.listen(PoseStamped, "/ee_pose", STATE_QOS)
        images = probe.listen(Image, "/camera/image_raw", SENSOR_QOS)
        commands = probe.listen(TwistStamped, "/target_twist", COMMAND_QOS)
        assert probe.spin_until(lambda: len(poses) > 5 and len(images) > 2, 30.0, nodes), arm.log() + camera.log()
        actor = NodeProcess("actor_node", actor_params(policy_path), tmp_path)
        nodes.append(actor)
        assert probe.spin_until(lambda: any(c.twist.linear.x > 0 for c in commands), 20.0, nodes), actor.log()
        # measure from here: the arm may already have moved while the probe waited to see the first command
        start = poses[-1].pose.position
        x0, y0, z0 = start.x, start.y, start.z
        t_acting = time.monotonic()
        probe.spin_for(2.0)
        moved_s = time.monotonic() - t_acting
        end = poses[-1].pose.position
        commanded_m = FIXED_ACTION[0] * moved_s
        # the filter ramps at max_accel (2 m/s^2, ~0.02 s to reach 0.04 m/s) and the arm's servo lags: half is a loose floor
        assert end.x - x0 > 0.5 * commanded_m, (x0, end.x, commanded_m)
        assert end.x - x0 < 1.5 * commanded_m
        assert abs(end.y - y0) < 0.01 and abs(end.z - z0) < 0.01
        acting = [c for c in commands if c.twist.linear.x > 0]
        assert all(c.twist.linear.x == pytest.approx(FIXED_ACTION[0]) for c in acting)
    finally:
        for node in reversed(nodes):
            assert node.stop() == 0, node.log()
