"""ROS 2 transport figures with real rclpy (Fast DDS), two processes on this host.

1. 640x480 rgb8 images at 30 Hz, sensor-data QoS: latency = receipt time - header stamp (wall clock).
2. A control loop closed through topics at 10 Hz and 100 Hz: the controller's timer publishes a
   command, the plant process echoes it as its state, and the controller measures the period between
   successive states; jitter = |period - nominal|. Also the command -> state round trip.
Prints one JSON line. Usage: python bench/ros_latency.py [--image-frames 200] [--loop10-s 10] [--loop100-s 5]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def _env() -> None:
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    # the nodes' Fast DDS profile (16 MB shared-memory segments); without it best-effort 640x480 frames are lost
    profile = Path(__file__).resolve().parents[1] / "ros_ws/src/robot_rl_ros/robot_rl_ros/fastdds_profile.xml"
    if os.environ.get("ROS_BENCH_DEFAULT_TRANSPORT") != "1":
        os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(profile))


def image_publisher(frames: int) -> None:
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    pub = node.create_publisher(Image, "bench/image_raw", qos_profile_sensor_data)
    while pub.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)  # let discovery settle both ways before the first frame
    color = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    period_s = 1 / 30
    next_s = time.monotonic()
    for _ in range(frames):
        now = time.time_ns()
        msg = Image(height=480, width=640, encoding="rgb8", step=640 * 3, data=color.tobytes())
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)
        pub.publish(msg)
        next_s += period_s
        time.sleep(max(0.0, next_s - time.monotonic()))
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()


def plant() -> None:
    """Echo each command as the state, at once."""
    import rclpy
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    rclpy.init()
    node = rclpy.create_node("bench_plant")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    state_pub = node.create_publisher(PoseStamped, "bench/state", qos)

    def echo(cmd: TwistStamped) -> None:
        state = PoseStamped(header=cmd.header)
        state.pose.position.x = cmd.twist.linear.x
        state_pub.publish(state)

    node.create_subscription(TwistStamped, "bench/command", echo, qos)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, Exception):
        pass


def percentile(values, q) -> float:
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else float("nan")


def measure_images(node, rclpy, frames: int) -> dict:
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    latencies_ms: list[float] = []
    node.create_subscription(Image, "bench/image_raw", lambda m: latencies_ms.append((time.time_ns() - (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)) / 1e6), qos_profile_sensor_data)
    child = subprocess.Popen([sys.executable, __file__, "--role", "image_pub", "--image-frames", str(frames)])
    while child.poll() is None:
        rclpy.spin_once(node, timeout_sec=0.05)
    return {"image_latency_ms_p50": percentile(latencies_ms, 50), "image_latency_ms_p99": percentile(latencies_ms, 99),
            "image_frames_received": len(latencies_ms), "image_frames_sent": frames}


def measure_loop(node, rclpy, rate_hz: float, seconds: float, tag: str) -> dict:
    from geometry_msgs.msg import PoseStamped, TwistStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    cmd_pub = node.create_publisher(TwistStamped, "bench/command", qos)
    arrivals_ns: list[int] = []
    round_trips_ms: list[float] = []

    def on_state(state: PoseStamped) -> None:
        now = time.time_ns()
        arrivals_ns.append(now)
        round_trips_ms.append((now - (state.header.stamp.sec * 10**9 + state.header.stamp.nanosec)) / 1e6)

    sub = node.create_subscription(PoseStamped, "bench/state", on_state, qos)
    while cmd_pub.get_subscription_count() == 0 or sub.get_publisher_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.3)

    def tick() -> None:
        cmd = TwistStamped()
        cmd.header.stamp.sec, cmd.header.stamp.nanosec = divmod(time.time_ns(), 1_000_000_000)
        cmd.twist.linear.x = 0.01
        cmd_pub.publish(cmd)

    timer = node.create_timer(1.0 / rate_hz, tick)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.01)
    node.destroy_timer(timer)
    node.destroy_subscription(sub)
    node.destroy_publisher(cmd_pub)
    periods_ms = np.diff(np.asarray(arrivals_ns, dtype=np.int64)) / 1e6
    jitter_ms = np.abs(periods_ms - 1e3 / rate_hz)
    return {f"{tag}_jitter_ms_p50": percentile(jitter_ms, 50), f"{tag}_jitter_ms_p99": percentile(jitter_ms, 99),
            f"{tag}_round_trip_ms_p50": percentile(round_trips_ms, 50), f"{tag}_round_trip_ms_p99": percentile(round_trips_ms, 99),
            f"{tag}_periods": int(len(periods_ms))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", default="main", choices=["main", "image_pub", "plant"])
    parser.add_argument("--image-frames", type=int, default=200)
    parser.add_argument("--loop10-s", type=float, default=10.0)
    parser.add_argument("--loop100-s", type=float, default=5.0)
    args = parser.parse_args()
    _env()
    if args.role == "image_pub":
        return image_publisher(args.image_frames)
    if args.role == "plant":
        return plant()
    import rclpy

    rclpy.init()
    node = rclpy.create_node("bench_main")
    result = {"bench": "ros_latency", "rmw": rclpy.get_rmw_implementation_identifier(), "cpus": os.cpu_count()}
    result.update(measure_images(node, rclpy, args.image_frames))
    plant_proc = subprocess.Popen([sys.executable, __file__, "--role", "plant"])
    try:
        result.update(measure_loop(node, rclpy, 10.0, args.loop10_s, "loop10"))
        result.update(measure_loop(node, rclpy, 100.0, args.loop100_s, "loop100"))
    finally:
        plant_proc.send_signal(signal.SIGINT)
        plant_proc.wait(timeout=10)
    node.destroy_node()
    rclpy.shutdown()
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
