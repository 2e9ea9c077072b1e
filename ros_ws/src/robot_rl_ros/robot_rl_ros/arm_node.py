"""arm_node: an `Arm` behind `SafeArm` (safety filter + watchdog), with the e-stop and a command gate.

Publishes `joint_states`, `ee_pose`, `ee_wrench` (reliable, at `state_rate_hz`). Takes `target_pose`
(PoseStamped), `target_twist` (TwistStamped) and `gripper_command` (Float64: -1 open, +1 close),
reliable. `/estop` (Bool, latched) holds the arm and rejects every command while true. Commands that
stop arriving make the `SafeArm` watchdog hold the arm after `command_timeout_ms` (safety file).
"""

from __future__ import annotations

import queue
import threading

import numpy as np
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, TwistStamped, Vector3, Wrench, WrenchStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64

from drivers.arms.base import Arm
from drivers.safety import SafeArm, SafetyConfig
from robot_rl_ros.command_gate import CommandGate
from robot_rl_ros.health import NodeHealth
from robot_rl_ros.ros_io import COMMAND_QOS, STATE_QOS, Diagnostics, declare, header, main_for, stamp_ns, subscribe_estop
from robot_rl_ros.stamps import age_ms, monotonic_to_wall_ns

JOINT_NAMES = [f"fr3_joint{i}" for i in range(1, 8)] + ["gripper_width"]


def make_arm(backend: str, host: str, table_top_z_m: float) -> Arm:
    if backend == "mujoco":
        from drivers.arms.mujoco_arm import MujocoArm

        return MujocoArm(table_top_z_m=table_top_z_m if table_top_z_m > 0 else None)
    if backend == "franky":
        from drivers.arms.franky_arm import FrankyArm

        return FrankyArm(host)
    raise ValueError(f"arm backend '{backend}' is unknown; set the parameter backend to mujoco or franky.")


class ArmNode(Node):
    def __init__(self):
        super().__init__("arm")
        backend = declare(self, "backend", "mujoco", "arm driver: mujoco (simulated FR3) or franky (real Franka)")
        host = declare(self, "host", "172.16.0.2", "franky: the robot's IP or host:port (franky-sim)")
        table_top_z_m = declare(self, "table_top_z_m", -1.0, "mujoco: table height, m (<= 0: no table)")
        safety_file = declare(self, "safety_file", "", "YAML SafetyConfig (workspace box, limits, watchdog timeout); '' = defaults")
        self.frame_id = declare(self, "frame_id", "base", "frame of poses, twists and wrenches")
        state_rate_hz = declare(self, "state_rate_hz", 50.0, "rate of joint_states / ee_pose / ee_wrench, Hz")
        max_age_ms = declare(self, "max_command_age_ms", 200.0, "commands stamped earlier than this are rejected as stale")
        box_margin_m = declare(self, "box_margin_m", 0.05, "pose targets this far outside the workspace box are rejected (closer ones are clipped)")
        safety = SafetyConfig.from_yaml(safety_file) if safety_file else SafetyConfig()
        self.health = NodeHealth()
        self.gate = CommandGate(safety, self.frame_id, max_age_ms, box_margin_m, rejected=self.health.rejected)
        self.arm = SafeArm(make_arm(backend, host, table_top_z_m), safety)
        self.arm.connect()
        self.joint_pub = self.create_publisher(JointState, "joint_states", STATE_QOS)
        self.pose_pub = self.create_publisher(PoseStamped, "ee_pose", STATE_QOS)
        self.wrench_pub = self.create_publisher(WrenchStamped, "ee_wrench", STATE_QOS)
        self.create_subscription(PoseStamped, "target_pose", self._on_pose, COMMAND_QOS)
        self.create_subscription(TwistStamped, "target_twist", self._on_twist, COMMAND_QOS)
        self.create_subscription(Float64, "gripper_command", self._on_gripper, COMMAND_QOS)
        subscribe_estop(self, self._on_estop)
        self.create_timer(1.0 / state_rate_hz, self._publish_state)
        self.diagnostics = Diagnostics(self, self.health, extra=self._arm_counters)
        # gripper moves block for up to seconds: one worker, newest command wins
        self._gripper_commands: queue.Queue[float | None] = queue.Queue(maxsize=1)
        self._gripper_thread = threading.Thread(target=self._run_gripper, name="gripper", daemon=True)
        self._gripper_thread.start()

    # ---- commands ---------------------------------------------------------------------------
    def _on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        pos, quat = np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])
        if self.gate.check_pose(pos, quat, msg.header.frame_id, age_ms(stamp_ns(msg.header))) is None:
            self._sent(self.arm.command_pose(pos, quat))

    def _on_twist(self, msg: TwistStamped) -> None:
        v, w = msg.twist.linear, msg.twist.angular
        twist = np.array([v.x, v.y, v.z, w.x, w.y, w.z])
        if self.gate.check_twist(twist, msg.header.frame_id, age_ms(stamp_ns(msg.header))) is None:
            self._sent(self.arm.command_cartesian_velocity(twist))

    def _sent(self, accepted: bool) -> None:
        if accepted:
            self.health.rate("command").tick()
        else:
            self.health.reject("safety_filter")  # non-finite after conversion, or the arm is stopped (force)

    def _on_gripper(self, msg: Float64) -> None:
        if self.gate.check_gripper(msg.data) is not None:
            return
        try:
            self._gripper_commands.get_nowait()  # drop a command not yet started
        except queue.Empty:
            pass
        self._gripper_commands.put(float(msg.data))

    def _run_gripper(self) -> None:
        while (command := self._gripper_commands.get()) is not None:
            if self.gate.estop:
                continue
            if command > 0.5:
                self.arm.gripper.close()
            elif command < -0.5:
                self.arm.gripper.open()

    def _on_estop(self, engaged: bool) -> None:
        if engaged and not self.gate.estop:
            self.arm.hold()
            self.get_logger().warn("e-stop engaged: arm held, commands rejected until /estop is false")
        self.gate.estop = engaged

    # ---- state ------------------------------------------------------------------------------
    def _publish_state(self) -> None:
        state = self.arm.state()
        msg_header = header(monotonic_to_wall_ns(state.stamp_ns), self.frame_id)
        self.joint_pub.publish(JointState(
            header=msg_header, name=JOINT_NAMES,
            position=[*map(float, state.joint_pos_rad), state.gripper_width_m],
            velocity=[*map(float, state.joint_vel_rad_s), 0.0],
        ))
        p, q = state.ee_pos_m, state.ee_quat_xyzw
        self.pose_pub.publish(PoseStamped(header=msg_header, pose=Pose(
            position=Point(x=float(p[0]), y=float(p[1]), z=float(p[2])),
            orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])),
        )))
        f = state.ee_wrench
        self.wrench_pub.publish(WrenchStamped(header=msg_header, wrench=Wrench(
            force=Vector3(x=float(f[0]), y=float(f[1]), z=float(f[2])), torque=Vector3(x=float(f[3]), y=float(f[4]), z=float(f[5])),
        )))
        self.health.extra["mode"] = state.mode.value
        self.health.rate("state").tick()

    def _arm_counters(self) -> None:
        counters = self.arm.counters
        self.health.extra.update({f"safety.{k}": v for k, v in vars(counters).items() if not k.startswith("last_")})
        self.health.extra["estop"] = self.gate.estop
        if self.gate.estop:
            self.health.set_status(2, "e-stop engaged: arm held")
        elif self.health.extra.get("mode") == "fault":
            self.health.set_status(2, "arm stopped on a fault; clear it and restart the node")
        else:
            self.health.set_status(0, "ok")

    def close(self) -> None:
        try:
            self._gripper_commands.get_nowait()
        except queue.Empty:
            pass
        self._gripper_commands.put(None)
        self._gripper_thread.join(timeout=5.0)
        self.arm.close()


def main() -> None:
    main_for(ArmNode)


if __name__ == "__main__":
    main()
