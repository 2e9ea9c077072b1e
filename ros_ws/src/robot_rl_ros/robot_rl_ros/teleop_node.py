"""teleop_node: an intervention device as `teleop/twist` (TwistStamped), `teleop/joy` (Joy), `teleop/engaged` (Bool).

Joy axes are [vx, vy, vz, wx, wy, wz, gripper] (device units: m/s, rad/s, -1 open .. +1 close).
The scripted backend is a `ReachExpert` that watches `ee_pose` (simulated sessions, tests).
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped, Twist, TwistStamped, Vector3
from rclpy.node import Node
from sensor_msgs.msg import Joy
from std_msgs.msg import Bool

from drivers.teleop.base import InterventionDevice
from robot_rl_ros.health import NodeHealth
from robot_rl_ros.reach_expert import ReachExpert
from robot_rl_ros.ros_io import COMMAND_QOS, STATE_QOS, Diagnostics, declare, header, main_for
from robot_rl_ros.stamps import monotonic_to_wall_ns


def make_device(backend: str, path: str, expert: ReachExpert) -> InterventionDevice:
    if backend == "scripted":
        from drivers.teleop.scripted import ScriptedDevice

        return ScriptedDevice(expert)
    if backend == "spacemouse":
        from drivers.teleop.spacemouse import SpaceMouse

        return SpaceMouse(path or None)
    if backend == "gamepad":
        from drivers.teleop.gamepad import Gamepad

        return Gamepad(path or None)
    if backend == "keyboard":
        from drivers.teleop.keyboard import Keyboard

        return Keyboard(path or None)
    raise ValueError(f"teleop backend '{backend}' is unknown; set the parameter backend to scripted, spacemouse, gamepad or keyboard.")


class TeleopNode(Node):
    def __init__(self):
        super().__init__("teleop")
        backend = declare(self, "backend", "scripted", "intervention device: scripted, spacemouse, gamepad or keyboard")
        path = declare(self, "device", "", "device path ('' = find it)")
        rate_hz = declare(self, "rate_hz", 50.0, "publish rate, Hz")
        self.frame_id = declare(self, "frame_id", "base", "frame of the twist")
        goal_m = declare(self, "expert_goal_m", [0.5, 0.0, 0.3], "scripted: TCP goal in the base frame, m")
        max_speed = declare(self, "expert_max_speed_m_s", 0.1, "scripted: speed cap, m/s")
        self.health = NodeHealth()
        self.device = make_device(backend, path, ReachExpert(np.array(goal_m), max_speed_m_s=max_speed))
        self.device.connect()
        if backend == "scripted":
            self.create_subscription(PoseStamped, "ee_pose", self._observe, STATE_QOS)
        self.twist_pub = self.create_publisher(TwistStamped, "teleop/twist", COMMAND_QOS)
        self.joy_pub = self.create_publisher(Joy, "teleop/joy", COMMAND_QOS)
        self.engaged_pub = self.create_publisher(Bool, "teleop/engaged", COMMAND_QOS)
        self.create_timer(1.0 / rate_hz, self._publish)
        self.diagnostics = Diagnostics(self, self.health)

    def _observe(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        self.device.observe(np.array([p.x, p.y, p.z]))

    def _publish(self) -> None:
        reading = self.device.read()
        msg_header = header(monotonic_to_wall_ns(reading.stamp_ns), self.frame_id)
        t = [float(x) for x in reading.twist]
        self.twist_pub.publish(TwistStamped(header=msg_header, twist=Twist(linear=Vector3(x=t[0], y=t[1], z=t[2]), angular=Vector3(x=t[3], y=t[4], z=t[5]))))
        self.joy_pub.publish(Joy(header=msg_header, axes=[*t, float(reading.gripper)], buttons=[int(b) for b in reading.buttons]))
        self.engaged_pub.publish(Bool(data=bool(reading.engaged)))
        self.health.rate("reading").tick()
        self.health.extra["engaged"] = reading.engaged

    def close(self) -> None:
        self.device.close()


def main() -> None:
    main_for(TeleopNode)


if __name__ == "__main__":
    main()
