"""actor_node: observations by timestamp -> exported ONNX policy at a fixed rate -> mixed commands.

Subscribes `ee_pose`, `joint_states` and the image topics (sensor-data QoS, so it matches reliable and
best-effort publishers), `teleop/twist` + `teleop/engaged` (interventions) and `/estop`. Publishes
`target_twist`, `gripper_command`, `actor/intervened` (Bool) and `actor/policy_action`
(Float32MultiArray). A silent topic makes it command a zero twist (hold) and name the topic on
/diagnostics. With `run_dir` set it learns: it acts with the learner's newest weights (ZeroMQ link,
`LearnerBridge`) and streams transitions, the reward from `reward` (Float64) and `success` (Bool);
without it, it runs the exported ONNX policy in `policy_path`.
"""

from __future__ import annotations

import time

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped, Vector3
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float32MultiArray, Float64

from robot_rl_ros.actor_core import ActorCore
from robot_rl_ros.health import NodeHealth, PeriodMeter
from robot_rl_ros.image_check import image_array
from robot_rl_ros.ros_io import COMMAND_QOS, SENSOR_QOS, Diagnostics, declare, header, main_for, stamp_ns, subscribe_estop
from robot_rl_ros.stamps import age_ms


class ActorNode(Node):
    def __init__(self):
        super().__init__("actor")
        policy_path = declare(self, "policy_path", "", "exported ONNX policy (robot-rl export), when not learning")
        run_dir = declare(self, "run_dir", "", "learn: the run directory of a running learner ('' = deploy policy_path)")
        episode_steps = declare(self, "episode_steps", 200, "learn: ticks per episode before it is truncated")
        rate_hz = declare(self, "rate_hz", 10.0, "control rate, Hz")
        max_age_ms = declare(self, "max_obs_age_ms", 300.0, "data older than this counts as silent: the actor holds")
        state_fields = declare(self, "state_fields", ["ee_pos", "ee_quat", "gripper_width"], "state vector layout, in order")
        image_keys = declare(self, "image_keys", [""], "policy image inputs, paired with image_topics ('' = none)")
        image_topics = declare(self, "image_topics", [""], "image topic per policy image input")
        twist_dims = declare(self, "twist_dims", 3, "leading action components that are the twist (3: linear only, 6: linear + angular)")
        gripper_index = declare(self, "gripper_index", -1, "action component commanding the gripper (-1: none)")
        self.frame_id = declare(self, "frame_id", "base", "frame of the commanded twist")
        self.bridge = None
        if run_dir:
            from robot_rl_ros.learner_bridge import LearnerBridge

            policy = self.bridge = LearnerBridge(run_dir, actor_id=self.get_name(), episode_steps=episode_steps)
            obs_spec = self.bridge.obs_spec.to_dict()
        elif policy_path:
            from policies.export.onnx_export import OnnxPolicy

            policy = OnnxPolicy(policy_path)
            obs_spec = policy.spec["obs_spec"]
        else:
            raise ValueError("actor_node needs policy_path (an ONNX file from `robot-rl export`) or run_dir (a running learner's run).")
        images = {k: t for k, t in zip(image_keys, image_topics) if k}
        missing = set(obs_spec["image_shapes"]) - set(images)
        if missing:
            raise ValueError(f"the policy reads cameras {sorted(missing)}; list them in image_keys with their image_topics.")
        self.image_hw = {images[k]: tuple(obs_spec["image_shapes"][k][:2]) for k in images}
        self.core = ActorCore(policy, list(state_fields), self.resolve("ee_pose"), self.resolve("joint_states"), {k: self.resolve(t) for k, t in images.items()},
                              max_age_ms, twist_dims, gripper_index, expected_state_dim=obs_spec["state_dim"])
        self.health = NodeHealth()
        self.period = PeriodMeter(rate_hz)
        self.estop = False
        self._intervention = (None, 0.0, False, 0)  # twist, gripper, engaged, twist stamp (wall ns)
        self._reward, self._success = 0.0, False  # newest since the last tick

        self.create_subscription(PoseStamped, "ee_pose", self._on_pose, SENSOR_QOS)
        self.create_subscription(JointState, "joint_states", self._on_joints, SENSOR_QOS)
        for topic in self.image_hw:
            self.create_subscription(Image, topic, lambda msg, t=topic: self._on_image(t, msg), SENSOR_QOS)
        self.create_subscription(TwistStamped, "teleop/twist", self._on_teleop_twist, COMMAND_QOS)
        self.create_subscription(Bool, "teleop/engaged", self._on_engaged, COMMAND_QOS)
        self.create_subscription(Float64, "reward", self._on_reward, COMMAND_QOS)
        self.create_subscription(Bool, "success", self._on_success, COMMAND_QOS)
        subscribe_estop(self, self._on_estop)
        self.twist_pub = self.create_publisher(TwistStamped, "target_twist", COMMAND_QOS)
        self.gripper_pub = self.create_publisher(Float64, "gripper_command", COMMAND_QOS)
        self.intervened_pub = self.create_publisher(Bool, "actor/intervened", COMMAND_QOS)
        self.action_pub = self.create_publisher(Float32MultiArray, "actor/policy_action", COMMAND_QOS)
        self.create_timer(1.0 / rate_hz, self._tick)
        self.diagnostics = Diagnostics(self, self.health, extra=self._loop_counters)

    def resolve(self, topic: str) -> str:
        return self.resolve_topic_name(topic)

    # ---- inputs -------------------------------------------------------------------------------
    def _on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        pos, quat = np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])
        if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(quat))):
            self.health.reject("ee_pose.nonfinite")
            return
        self.core.assembler.put(self.core.pose_topic, {"pos": pos, "quat": quat}, stamp_ns(msg.header))

    def _on_joints(self, msg: JointState) -> None:
        positions = np.asarray(msg.position, dtype=float)
        if positions.shape[0] < 8:
            self.health.reject("joint_states.size")
        elif not np.all(np.isfinite(positions)):
            self.health.reject("joint_states.nonfinite")
        else:
            self.core.assembler.put(self.core.joints_topic, positions, stamp_ns(msg.header))

    def _on_image(self, topic: str, msg: Image) -> None:
        array, reason = image_array(msg, "rgb8", self.image_hw[topic])
        if reason is not None:
            self.health.reject(f"{topic}.{reason}")
            return
        self.core.assembler.put(topic, array, stamp_ns(msg.header))

    def _on_teleop_twist(self, msg: TwistStamped) -> None:
        v, w = msg.twist.linear, msg.twist.angular
        twist = np.array([v.x, v.y, v.z, w.x, w.y, w.z])
        if not np.all(np.isfinite(twist)):
            self.health.reject("teleop.nonfinite")
            return
        _, gripper, engaged, _ = self._intervention
        self._intervention = (twist, gripper, engaged, stamp_ns(msg.header))

    def _on_engaged(self, msg: Bool) -> None:
        twist, gripper, _, stamp = self._intervention
        self._intervention = (twist, gripper, bool(msg.data), stamp)

    def _on_reward(self, msg: Float64) -> None:
        if np.isfinite(msg.data):
            self._reward = float(msg.data)
        else:
            self.health.reject("reward.nonfinite")

    def _on_success(self, msg: Bool) -> None:
        self._success = self._success or bool(msg.data)

    def _on_estop(self, engaged: bool) -> None:
        self.estop = engaged

    # ---- the control tick -----------------------------------------------------------------------
    def _tick(self) -> None:
        self.period.tick()
        if self.bridge is not None:
            self.bridge.poll()  # new weights are taken between ticks only
        now_ns = time.time_ns()
        twist, gripper, engaged, twist_stamp = self._intervention
        intervention = self.core.intervention(twist, gripper, engaged, age_ms(twist_stamp, now_ns) if twist is not None else float("inf"))
        decision = self.core.step(now_ns, intervention)
        self.health.ages_ms = self.core.assembler.ages_ms(now_ns)
        if self.estop:
            decision.obs = None  # no transition spans an e-stop
        if self.bridge is not None:
            self.bridge.record(decision.obs, self.core.executed_action(decision), self._reward, self._success)
            self._reward, self._success = 0.0, False
        if self.estop:
            self.health.set_status(2, "e-stop engaged: not commanding")
            return
        if decision.silent:
            self.health.set_status(2, f"holding: no fresh data on {', '.join(decision.silent)} (max age {self.core.assembler.max_age_ms:.0f} ms)")
            self.health.extra["holds"] = int(self.health.extra.get("holds", 0)) + 1
        else:
            self.health.set_status(0, "acting")
        t = [float(x) for x in decision.twist]
        self.twist_pub.publish(TwistStamped(header=header(now_ns, self.frame_id), twist=Twist(linear=Vector3(x=t[0], y=t[1], z=t[2]), angular=Vector3(x=t[3], y=t[4], z=t[5]))))
        if decision.gripper is not None:
            self.gripper_pub.publish(Float64(data=float(decision.gripper)))
        self.intervened_pub.publish(Bool(data=decision.intervened))
        if decision.policy_action is not None:
            self.action_pub.publish(Float32MultiArray(data=[float(a) for a in decision.policy_action]))
        self.health.rate("tick").tick()

    def _loop_counters(self) -> None:
        self.health.extra.update(deadline_misses=self.period.deadline_misses, max_jitter_ms=f"{self.period.max_jitter_ms:.2f}",
                                 obs_skew_ms=f"{self.core.assembler.skew_ms():.1f}")
        if self.bridge is not None:
            self.health.extra.update(policy_version=self.bridge.policy_version, env_steps=self.bridge.env_steps, learner_backlog=self.bridge.link.backlog)

    def close(self) -> None:
        if self.bridge is not None:
            self.bridge.close()


def main() -> None:
    main_for(ActorNode)


if __name__ == "__main__":
    main()
