"""ROS plumbing shared by the nodes: QoS profiles, header stamps, the e-stop topic, /diagnostics, main()."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import rclpy
import rclpy.executors
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from std_msgs.msg import Bool, Header

from robot_rl_ros.health import NodeHealth
from robot_rl_ros.stamps import join_ns, split_ns

SENSOR_QOS = qos_profile_sensor_data  # best effort, keep last 5: a late frame is worth less than the next one
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
# latched: a late subscriber still gets the last message (an e-stop pressed before it started, a summary, an endpoint)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
ESTOP_QOS = LATCHED_QOS
DIAGNOSTICS_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
ESTOP_TOPIC = "/estop"
FASTDDS_PROFILE = Path(__file__).with_name("fastdds_profile.xml")


def use_large_data_transport() -> None:
    """Point Fast DDS at our profile (large shared-memory segments) unless the user chose one; call before rclpy.init."""
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))


def header(stamp_wall_ns: int, frame_id: str) -> Header:
    sec, nanosec = split_ns(stamp_wall_ns)
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def stamp_ns(msg_header: Header) -> int:
    return join_ns(msg_header.stamp.sec, msg_header.stamp.nanosec)


def declare(node: Node, name: str, default, description: str):
    """Declare a parameter with its default and description; return its value."""
    return node.declare_parameter(name, default, ParameterDescriptor(description=description)).value


class Diagnostics:
    """Publishes one DiagnosticStatus for the node on /diagnostics every `period_s`, from a `NodeHealth`."""

    def __init__(self, node: Node, health: NodeHealth, period_s: float = 1.0, extra=None):
        self.node, self.health, self.extra = node, health, extra
        self.publisher = node.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.timer = node.create_timer(period_s, self.publish)

    def publish(self) -> None:
        if self.extra is not None:
            self.extra()
        status = DiagnosticStatus(
            level=bytes([self.health.level]),
            name=f"robot_rl/{self.node.get_name()}",
            message=self.health.message,
            hardware_id=self.node.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=v) for k, v in self.health.values().items()],
        )
        self.publisher.publish(DiagnosticArray(header=header(time.time_ns(), ""), status=[status]))


def subscribe_estop(node: Node, on_change) -> None:
    node.create_subscription(Bool, ESTOP_TOPIC, lambda msg: on_change(bool(msg.data)), ESTOP_QOS)


def spin_counting_take_failures(node: Node) -> None:
    """rclpy.spin, except that a message rclpy fails to take is counted and dropped instead of ending the node.

    rclpy 7.1.6 occasionally raises "Unable to convert call argument" from take_message under load;
    one unreadable message must not take a robot's node down.
    """
    executor = rclpy.executors.SingleThreadedExecutor()
    executor.add_node(node)
    failures = 0
    try:
        while rclpy.ok():
            try:
                executor.spin_once(timeout_sec=0.1)
            except RuntimeError as err:
                if "Unable to convert call argument" not in str(err):
                    raise
                failures += 1
                node.get_logger().warning(f"dropped a message rclpy could not take ({failures} so far): {err}")
    finally:
        executor.remove_node(node)


def main_for(node_cls) -> None:
    """Entry point: init, spin until Ctrl-C or SIGTERM, and always release the device."""
    use_large_data_transport()
    rclpy.init(args=sys.argv)
    node = None
    try:
        node = node_cls()
        spin_counting_take_failures(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.close()
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()

