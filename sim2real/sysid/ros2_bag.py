"""Quadrotor flight logs as ROS 2 bags (read with `rosbags`, no ROS installation needed).

Topics (standard messages):
  odometry  nav_msgs/msg/Odometry: pose in the world frame, twist in the body frame (REP 105:
            the child frame); converted to the log's world-frame linear velocity.
  commands  std_msgs/msg/Float32MultiArray: the 4 normalized rpm setpoints as sent, stamped by
            the bag's receive time.
A state's command is the last one received before the next state (held in between), which is
how the simulator log pairs them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sim2real.quadrotor.dynamics import rotation_matrices
from sim2real.sysid.logs import TrajectoryLog
from sim2real.sysid.quadrotor_flight import ACTION_NAMES, STATE_NAMES

ROSBAGS_HELP = "reading ROS 2 bags needs the rosbags package: pip install rosbags"


def _rosbags():
    try:
        from rosbags.rosbag2 import Reader, Writer
        from rosbags.typesys import Stores, get_typestore
    except ImportError:
        raise ImportError(ROSBAGS_HELP) from None
    return Reader, Writer, get_typestore(Stores.ROS2_HUMBLE)


def read_quadrotor_bag(path, odometry_topic: str = "/odom", command_topic: str = "/rpm_setpoint") -> TrajectoryLog:
    Reader, _, typestore = _rosbags()
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no ROS 2 bag at {path}: give the bag's directory.")
    times, states, command_times, commands = [], [], [], []
    with Reader(path) as reader:
        topics = {c.topic for c in reader.connections}
        missing = {odometry_topic, command_topic} - topics
        if missing:
            raise ValueError(f"{path} has no topic(s) {sorted(missing)}; it has {sorted(topics)}: pass the right names.")
        wanted = [c for c in reader.connections if c.topic in (odometry_topic, command_topic)]
        for connection, bag_time_ns, raw in reader.messages(connections=wanted):
            msg = typestore.deserialize_cdr(raw, connection.msgtype)
            if connection.topic == odometry_topic:
                stamp = msg.header.stamp
                times.append(stamp.sec + 1e-9 * stamp.nanosec)
                p, q = msg.pose.pose.position, msg.pose.pose.orientation
                v, w = msg.twist.twist.linear, msg.twist.twist.angular
                states.append([p.x, p.y, p.z, q.w, q.x, q.y, q.z, v.x, v.y, v.z, w.x, w.y, w.z])
            else:
                command_times.append(1e-9 * bag_time_ns)
                commands.append(np.asarray(msg.data, np.float64))
    if len(states) < 2 or not commands:
        raise ValueError(f"{path} holds {len(states)} odometry and {len(commands)} command messages: record a flight first.")
    order = np.argsort(times)
    times, states = np.asarray(times)[order], np.asarray(states)[order]
    rot = rotation_matrices(states[:, 3:7].T).T.reshape(-1, 3, 3)
    states[:, 7:10] = np.einsum("nij,nj->ni", rot, states[:, 7:10])  # body-frame twist -> world velocity
    command_times, commands = np.asarray(command_times), np.asarray(commands)
    held = np.searchsorted(command_times, times[1:], side="left") - 1
    if held.min() < 0:
        first = np.argmax(held >= 0)
        times, states, held = times[first:], states[first:], held[first:]
    return TrajectoryLog.from_timestamped(times, states, commands[held], state_names=STATE_NAMES,
                                          action_names=ACTION_NAMES)


def write_quadrotor_bag(log: TrajectoryLog, path, odometry_topic: str = "/odom",
                        command_topic: str = "/rpm_setpoint", command_latency_s: float = 0.001) -> None:
    """Writes a simulated flight as the bag a real one would give (commands `command_latency_s` after each state)."""
    _, Writer, typestore = _rosbags()
    Odometry = typestore.types["nav_msgs/msg/Odometry"]
    Float32MultiArray = typestore.types["std_msgs/msg/Float32MultiArray"]
    Header, Time = typestore.types["std_msgs/msg/Header"], typestore.types["builtin_interfaces/msg/Time"]
    geometry = {n: typestore.types[f"geometry_msgs/msg/{n}"] for n in (
        "Point", "Quaternion", "Pose", "PoseWithCovariance", "Vector3", "Twist", "TwistWithCovariance")}
    Layout = typestore.types["std_msgs/msg/MultiArrayLayout"]
    states = log.states
    rot = rotation_matrices(states[:, 3:7].T).T.reshape(-1, 3, 3)
    body_velocity = np.einsum("nji,nj->ni", rot, states[:, 7:10])
    covariance = np.zeros(36)
    with Writer(Path(path), version=8) as writer:
        odom = writer.add_connection(odometry_topic, Odometry.__msgtype__, typestore=typestore)
        cmd = writer.add_connection(command_topic, Float32MultiArray.__msgtype__, typestore=typestore)
        for t, s in enumerate(states):
            time_s = 1.0 + t * log.dt_s  # bags start at a positive time
            stamp_ns = round(time_s * 1e9)
            header = Header(stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="world")
            pose = geometry["Pose"](position=geometry["Point"](x=s[0], y=s[1], z=s[2]),
                                    orientation=geometry["Quaternion"](x=s[4], y=s[5], z=s[6], w=s[3]))
            twist = geometry["Twist"](linear=geometry["Vector3"](*body_velocity[t]), angular=geometry["Vector3"](*s[10:13]))
            msg = Odometry(header=header, child_frame_id="base_link",
                           pose=geometry["PoseWithCovariance"](pose=pose, covariance=covariance),
                           twist=geometry["TwistWithCovariance"](twist=twist, covariance=covariance))
            writer.write(odom, stamp_ns, typestore.serialize_cdr(msg, Odometry.__msgtype__))
            if t < log.num_steps:
                command = Float32MultiArray(layout=Layout(dim=[], data_offset=0),
                                            data=log.actions[t].astype(np.float32))
                writer.write(cmd, stamp_ns + round(command_latency_s * 1e9),
                             typestore.serialize_cdr(command, Float32MultiArray.__msgtype__))
