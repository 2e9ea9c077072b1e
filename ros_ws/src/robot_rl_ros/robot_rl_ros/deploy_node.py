"""deploy_node: an exported ONNX policy on the robot's driver at the export's control rate (`robot-rl deploy` in ROS).

The fixed-rate loop is `PolicyRunner` (policies/runtime) in its own thread, on its own monotonic clock,
so ROS callbacks never delay a step and the deadline statistics are the runner's own. Publishes every
applied action on `deploy/action` (Float32MultiArray); for an arm export (action `ee_delta_xyz` [+ `gripper`])
also `target_twist` (TwistStamped, m/s) and `gripper_command` (Float64) as actor_node does. `/estop`
(Bool, latched) makes every step apply the runner's fallback (hold), counted as `fallbacks.estop`.
/diagnostics carries period error and inference p50/p99 (us), misses and fallbacks by reason; the
summary JSON is printed and published latched on `deploy/summary` (std_msgs/String) when the run ends.
"""

from __future__ import annotations

import json

import numpy as np
from geometry_msgs.msg import Twist, TwistStamped, Vector3
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray, Float64, String

from robot_rl_ros.deploy_core import DeployCore
from robot_rl_ros.health import NodeHealth
from robot_rl_ros.ros_io import COMMAND_QOS, LATCHED_QOS, Diagnostics, declare, header, main_for, subscribe_estop
from robot_rl_ros.stamps import monotonic_to_wall_ns

SUMMARY_QOS = LATCHED_QOS  # latched: a tool that connects after the run ended still gets its summary


class DeployNode(Node):
    def __init__(self):
        super().__init__("deploy")
        export = declare(self, "export", "", "directory written by robot-rl export (or its policy.onnx)")
        robot = declare(self, "robot", "", "robot config, e.g. launch/deploy_sim_pick_cube.yaml")
        backend = declare(self, "backend", "onnxruntime", "inference backend: onnxruntime or c (an export made with --format c)")
        seconds = declare(self, "seconds", 0.0, "run this long, then publish the summary and idle (<= 0: until shutdown)")
        arm_topics = declare(self, "arm_topics", True, "arm exports: also publish target_twist and gripper_command")
        self.frame_id = declare(self, "frame_id", "base", "frame of the published twist")
        if not export or not robot:
            raise ValueError("deploy_node needs the parameters export (a robot-rl export) and robot (a launch/deploy_*.yaml robot config).")
        self.health = NodeHealth()
        self.action_pub = self.create_publisher(Float32MultiArray, "deploy/action", COMMAND_QOS)
        self.summary_pub = self.create_publisher(String, "deploy/summary", SUMMARY_QOS)
        self.core = DeployCore(export, robot, backend, on_action=self._on_action)
        layout = self.core.action_layout
        # an arm export's first part moves the end effector by up to max_step_m per step
        env = getattr(self.core.driver, "env", None)
        max_step_m = getattr(env.unwrapped, "max_step_m", None) if env is not None else None
        self.twist_scale = None
        if arm_topics and layout and layout[0] == ("ee_delta_xyz", 3) and max_step_m:
            self.twist_scale = float(max_step_m) * self.core.robot.control_hz  # action 1.0 -> m/s
            self.twist_pub = self.create_publisher(TwistStamped, "target_twist", COMMAND_QOS)
        self.gripper_index = next((sum(n for _, n in layout[:i]) for i, (name, _) in enumerate(layout) if name == "gripper"), None)
        if self.twist_scale is not None and self.gripper_index is not None:
            self.gripper_pub = self.create_publisher(Float64, "gripper_command", COMMAND_QOS)
        subscribe_estop(self, self._on_estop)
        self.diagnostics = Diagnostics(self, self.health, extra=self._runner_stats)
        self._reported = False
        self.core.start(seconds if seconds > 0 else None, on_done=self._on_done)
        self.get_logger().info(f"deploying {export} on '{self.core.robot.name}' at {self.core.robot.control_hz:g} Hz")

    # ---- from the runner thread ---------------------------------------------------------------
    def _on_action(self, action: np.ndarray, stamp_ns: int) -> None:
        self.action_pub.publish(Float32MultiArray(data=action.tolist()))
        if self.twist_scale is not None:
            v = np.clip(action[:3], -1.0, 1.0) * self.twist_scale
            self.twist_pub.publish(TwistStamped(header=header(monotonic_to_wall_ns(stamp_ns), self.frame_id),
                                                twist=Twist(linear=Vector3(x=float(v[0]), y=float(v[1]), z=float(v[2])))))
            if self.gripper_index is not None:
                self.gripper_pub.publish(Float64(data=1.0 if action[self.gripper_index] > 0.0 else -1.0))
        self.health.rate("action").tick(stamp_ns)

    def _on_done(self, summary: dict | None, error: BaseException | None) -> None:
        if error is not None:
            self.get_logger().error(f"the policy loop stopped: {error!r}")
            return
        self._report(summary)

    def _report(self, summary: dict | None) -> None:
        if self._reported or summary is None:
            return
        self._reported = True
        line = json.dumps(summary)
        print(line, flush=True)
        try:
            self.summary_pub.publish(String(data=line))
        except Exception:  # after Ctrl-C the ROS context is gone: the printed line is the record
            pass

    # ---- ROS side -------------------------------------------------------------------------------
    def _on_estop(self, engaged: bool) -> None:
        if engaged and not self.core.gate.engaged:
            self.get_logger().warn("e-stop engaged: applying the fallback (hold) until /estop is false")
        self.core.set_estop(engaged)

    def _runner_stats(self) -> None:
        self.health.extra.update(self.core.live_stats())
        if self.core.error is not None:
            self.health.set_status(2, f"policy loop stopped: {self.core.error}")
        elif self.core.gate.engaged:
            self.health.set_status(2, "e-stop engaged: holding")
        elif self.core.running:
            self.health.set_status(0, "running")
        else:
            self.health.set_status(1, "run finished: summary on deploy/summary")

    def close(self) -> None:
        self._report(self.core.stop())  # no logging here: after Ctrl-C the ROS context is already shut down


def main() -> None:
    main_for(DeployNode)


if __name__ == "__main__":
    main()
