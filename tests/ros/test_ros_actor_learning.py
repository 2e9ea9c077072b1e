"""actor_node learning: weights from a real learner process over the ZeroMQ link, transitions back,
observations and reward through ROS topics (the test process publishes them)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from ros_harness import REPO, NodeProcess, Probe, diagnostic_values, isolate_domain, require_rclpy

require_rclpy()
isolate_domain()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped, TwistStamped  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402

from robot_rl.rundir import RunDir  # noqa: E402
from robot_rl_ros.ros_io import COMMAND_QOS, STATE_QOS, header  # noqa: E402

SPEED_M_S = 0.05
SESSION = """name: ros_learning_test
env: robot_rl/PickCube-v0
seed: 0
learner:
  num_critics: 2
  critic_subsample: 2
  utd: 1
  batch_size: 16
  warmup_steps: 10
  hidden_dims: [32, 32]
  replay_capacity: 2000
train:
  max_env_steps: 100000
  max_minutes: 5
"""


@pytest.fixture
def learner_run(tmp_path):
    run = RunDir(tmp_path / "run").make()
    run.config.write_text(SESSION)
    # the layout the ROS actor observes and commands: [ee_pos, ee_quat, gripper_width] -> [vx, vy, vz, gripper]
    run.spec.write_text(json.dumps({"obs_spec": {"state_dim": 8, "image_shapes": {}, "state_keys": []},
                                    "action_low": [-SPEED_M_S] * 3 + [-1.0], "action_high": [SPEED_M_S] * 3 + [1.0], "env": "ros"}))
    log = open(tmp_path / "learner.log", "w")
    learner = subprocess.Popen([sys.executable, "-m", "robot_rl.learner", str(run.root)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    yield run, learner, tmp_path / "learner.log"
    learner.terminate()
    try:
        learner.wait(timeout=20)
    except subprocess.TimeoutExpired:
        learner.kill()
        learner.wait()
    log.close()


def test_actor_node_streams_transitions_to_the_learner_and_takes_its_weights(learner_run, tmp_path):
    run, learner, learner_log = learner_run
    rclpy.init()
    probe = Probe("learning_probe")
    actor = NodeProcess("actor_node", {"run_dir": str(run.root), "rate_hz": 20.0, "max_obs_age_ms": 300.0, "episode_steps": 25,
                                       "state_fields": ["ee_pos", "ee_quat", "gripper_width"], "twist_dims": 3, "gripper_index": 3},
                        tmp_path, namespace="/learn")
    try:
        twists = probe.listen(TwistStamped, "/learn/target_twist", COMMAND_QOS)
        diagnostics = probe.listen(DiagnosticArray, "/diagnostics", QoSProfile(depth=50))
        pose_pub = probe.node.create_publisher(PoseStamped, "/learn/ee_pose", STATE_QOS)
        joints_pub = probe.node.create_publisher(JointState, "/learn/joint_states", STATE_QOS)
        reward_pub = probe.node.create_publisher(Float64, "/learn/reward", COMMAND_QOS)

        def feed():
            now = time.time_ns()
            pose = PoseStamped(header=header(now, "base"))
            pose.pose.position.x, pose.pose.position.z, pose.pose.orientation.w = 0.5, 0.3, 1.0
            pose_pub.publish(pose)
            joints_pub.publish(JointState(header=header(now, "base"), name=[f"j{i}" for i in range(8)], position=[0.0] * 7 + [0.04]))
            reward_pub.publish(Float64(data=-1.0))
            if learner.poll() is not None:
                raise AssertionError(f"the learner exited:\n{learner_log.read_text()[-3000:]}")

        def learner_stored(n: int) -> bool:
            feed()
            try:
                status = json.loads(run.status.read_text())
            except (OSError, ValueError):
                return False
            return status.get("replay", {}).get("stored", 0) >= n and status.get("learner_updates", 0) > 0

        assert probe.spin_until(lambda: learner_stored(40), 60.0, [actor]), (actor.log()[-3000:], learner_log.read_text()[-3000:])
        values = diagnostic_values(diagnostics, "actor")
        assert probe.spin_until(lambda: (feed(), (v := diagnostic_values(diagnostics, "actor")) is not None and int(v[2].get("policy_version", -1)) >= 0)[-1], 20.0, [actor]), values
        commanded = np.array([[t.twist.linear.x, t.twist.linear.y, t.twist.linear.z] for t in twists[-20:]])
        assert np.all(np.abs(commanded) <= SPEED_M_S + 1e-6) and np.ptp(commanded[:, 0]) > 0  # exploring, within the action bounds
    finally:
        assert actor.stop() == 0, actor.log()
        probe.close()
        rclpy.shutdown()
