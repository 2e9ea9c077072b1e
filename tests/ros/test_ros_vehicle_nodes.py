"""quadrotor_node and rc_car_node, each in its own process with its simulated backend, driven through topics with real rclpy.

The quadrotor is the real Crazyflie driver (geofence, dead-man watchdog) over a simulated radio/vehicle;
the car is the simulated twin of drivers/rc_car. Each test checks commands move the vehicle, that a
silence longer than the dead-man timeout stops/brakes it, that /estop does and refuses commands, and
that stale commands are refused, all as counted on /diagnostics.
"""

from __future__ import annotations

import time

import pytest
from ros_harness import NodeProcess, Probe, assert_running, diagnostic_values, isolate_domain, require_rclpy

require_rclpy()
isolate_domain()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import PoseStamped, TwistStamped  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from std_msgs.msg import Bool, Float32MultiArray  # noqa: E402

from robot_rl_ros.launch_plan import plan  # noqa: E402
from robot_rl_ros.ros_io import COMMAND_QOS, ESTOP_QOS, STATE_QOS, header  # noqa: E402


def shipped_params(robot: str) -> dict:
    """The node's parameters from launch/ros/<robot>.yaml, so the shipped files are what runs here."""
    (node,) = plan(robot)
    return node.parameters


@pytest.fixture(scope="module")
def probe():
    rclpy.init()
    probe = Probe("vehicle_probe")
    probe.estop = probe.node.create_publisher(Bool, "/estop", ESTOP_QOS)
    probe.listen(DiagnosticArray, "/diagnostics", QoSProfile(depth=50))
    yield probe
    probe.close()
    rclpy.shutdown()


def stream(probe, publisher, make_msg, seconds: float, rate_hz: float = 20.0) -> None:
    """Publish fresh commands at `rate_hz` for `seconds`, spinning the probe in between."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        publisher.publish(make_msg())
        probe.spin_for(1.0 / rate_hz)


def stream_until(probe, publisher, make_msg, condition, timeout_s: float, nodes, rate_hz: float = 20.0) -> bool:
    """Keep publishing fresh commands until `condition()` holds (False after `timeout_s`): on 2 shared cores a
    message can take a few hundred ms, so the tests wait for outcomes instead of sleeping fixed times."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        assert_running(nodes)
        publisher.publish(make_msg())
        probe.spin_for(1.0 / rate_hz)
    return condition()


def fresh_diag(probe, name: str, condition, timeout_s: float, nodes) -> dict:
    diagnostics = probe.heard["/diagnostics"]

    def ok():
        found = diagnostic_values(diagnostics, name)
        return found is not None and condition(found[2])

    assert probe.spin_until(ok, timeout_s, nodes), diagnostic_values(diagnostics, name)
    return diagnostic_values(diagnostics, name)[2]


def test_quadrotor_flies_setpoints_stops_on_deadman_and_estop(probe, tmp_path):
    node = NodeProcess("quadrotor_node", shipped_params("sim_quadrotor"), tmp_path)
    poses = probe.listen(PoseStamped, "/pose", STATE_QOS)
    setpoints = probe.node.create_publisher(PoseStamped, "/cmd_position", COMMAND_QOS)

    def hover_at(z_m: float, stamp_ns: int | None = None):
        msg = PoseStamped(header=header(time.time_ns() if stamp_ns is None else stamp_ns, "world"))
        msg.pose.position.z, msg.pose.orientation.w = z_m, 1.0
        return msg

    try:
        assert probe.spin_until(lambda: len(poses) >= 5, 30.0, [node]), node.log()
        probe.estop.publish(Bool(data=False))
        # lag 0.15 s, gain 1/s: within 5 cm of 0.5 m after ~2.5 s of setpoints
        assert stream_until(probe, setpoints, lambda: hover_at(0.5), lambda: abs(poses[-1].pose.position.z - 0.5) < 0.05, 8.0, [node]), poses[-1]
        # setpoints stop: the driver's dead-man sends the stop setpoint, the motors go off and it drops to the floor
        assert probe.spin_until(lambda: poses[-1].pose.position.z == 0.0, 3.0, [node]), poses[-1]
        values = fresh_diag(probe, "quadrotor", lambda v: v["deadman_stops"] == "1", 3.0, [node])
        assert values["sim.mode"] == "off"
        # a setpoint above the geofence (1.5 m) is clamped into it
        assert stream_until(probe, setpoints, lambda: hover_at(3.0), lambda: poses[-1].pose.position.z > 1.45, 8.0, [node]), poses[-1]
        seen = len(poses)
        stream(probe, setpoints, lambda: hover_at(3.0), 0.5)  # at up to 1 m/s it would be 0.5 m above the fence by now
        assert max(p.pose.position.z for p in poses[seen:]) <= 1.5 + 1e-6
        # e-stop while flying: motors off at once, and setpoints are refused while it is engaged
        probe.estop.publish(Bool(data=True))
        # free fall from 1.5 m takes 0.55 s; the rest of the 3 s is slack for delivery on loaded cores
        assert stream_until(probe, setpoints, lambda: hover_at(1.0), lambda: poses[-1].pose.position.z == 0.0, 3.0, [node]), poses[-1]
        values = fresh_diag(probe, "quadrotor", lambda v: int(v.get("rejected.estop", 0)) >= 3, 3.0, [node])
        assert values["estop"] == "True" and int(values["clamped_setpoints"]) > 0
        # released: it flies again; an old setpoint is refused as stale
        probe.estop.publish(Bool(data=False))
        fresh_diag(probe, "quadrotor", lambda v: v["estop"] == "False", 3.0, [node])
        setpoints.publish(hover_at(1.0, stamp_ns=time.time_ns() - 2_000_000_000))
        assert stream_until(probe, setpoints, lambda: hover_at(0.3), lambda: poses[-1].pose.position.z > 0.2, 6.0, [node]), poses[-1]
        fresh_diag(probe, "quadrotor", lambda v: v.get("rejected.stale") == "1" and v["estop"] == "False", 3.0, [node])
    finally:
        assert node.stop() == 0, node.log()


def test_rc_car_drives_brakes_on_deadman_and_estop(probe, tmp_path):
    node = NodeProcess("rc_car_node", shipped_params("sim_rc_car"), tmp_path)
    velocities = probe.listen(TwistStamped, "/velocity", STATE_QOS)
    telemetry = probe.listen(Float32MultiArray, "/telemetry", STATE_QOS)
    poses = probe.listen(PoseStamped, "/pose", STATE_QOS)
    commands = probe.node.create_publisher(TwistStamped, "/cmd_drive", COMMAND_QOS)

    def drive(speed_m_s: float, steer: float = 0.0, stamp_ns: int | None = None):
        msg = TwistStamped(header=header(time.time_ns() if stamp_ns is None else stamp_ns, "base_link"))
        msg.twist.linear.x, msg.twist.angular.z = speed_m_s, steer
        return msg

    try:
        assert probe.spin_until(lambda: len(velocities) >= 3, 30.0, [node]), node.log()
        probe.estop.publish(Bool(data=False))
        # the twin starts on a straight that ends about 2 m ahead: 1 m/s for 1 s forward, later 1 s back
        # the ESC speed loop reaches 1 m/s in ~0.3 s (gain 8/s, 6 m/s^2)
        assert stream_until(probe, commands, lambda: drive(1.0, 0.05), lambda: velocities[-1].twist.linear.x > 0.7, 4.0, [node]), velocities[-1]
        speed_driving = velocities[-1].twist.linear.x
        assert len(telemetry[-1].data) == 7 and abs(telemetry[-1].data[0] - speed_driving) < 0.5
        assert poses[-1].header.frame_id == "track"
        # commands stop: the dead-man brakes
        assert probe.spin_until(lambda: velocities[-1].twist.linear.x < 0.5 * speed_driving, 3.0, [node]), [v.twist.linear.x for v in velocities[-20:]]
        fresh_diag(probe, "rc_car", lambda v: v["deadman_trips"] == "1" and v["driver_deadman_braking"] == "True", 3.0, [node])
        # e-stop while driving: braked although commands keep coming, and they are counted as refused
        assert stream_until(probe, commands, lambda: drive(-1.0), lambda: velocities[-1].twist.linear.x < -0.7, 4.0, [node]), velocities[-1]
        speed_before = velocities[-1].twist.linear.x
        probe.estop.publish(Bool(data=True))
        # braking at 8 m/s^2 stops it from 1 m/s in 0.13 s; the rest of the 3 s is slack for delivery
        assert stream_until(probe, commands, lambda: drive(-1.0), lambda: abs(velocities[-1].twist.linear.x) < 0.1, 3.0, [node]), \
            (speed_before, velocities[-1].twist.linear.x)
        values = fresh_diag(probe, "rc_car", lambda v: int(v.get("rejected.estop", 0)) >= 3, 3.0, [node])
        assert values["estop"] == "True"
        probe.estop.publish(Bool(data=False))
        fresh_diag(probe, "rc_car", lambda v: v["estop"] == "False", 3.0, [node])
        commands.publish(drive(2.0, stamp_ns=time.time_ns() - 2_000_000_000))
        commands.publish(drive(float("nan")))
        fresh_diag(probe, "rc_car", lambda v: v.get("rejected.stale") == "1" and v.get("rejected.nonfinite") == "1", 3.0, [node])
    finally:
        assert node.stop() == 0, node.log()


def test_vehicle_gate_refuses_by_reason_and_fires_the_deadman_once_per_gap():
    from robot_rl_ros.vehicle_gate import VehicleGate

    gate = VehicleGate(deadman_timeout_ms=100.0, max_age_ms=50.0)
    assert not gate.deadman_due(now_ns=10**12)  # never before the first command
    assert gate.accept((1.0, 0.0), age_ms=5.0, now_ns=0)
    assert not gate.accept((float("nan"), 0.0), age_ms=5.0) and not gate.accept((1.0, 0.0), age_ms=80.0)
    assert not gate.accept((1.0, 0.0), age_ms=-80.0)
    gate.estop = True
    assert not gate.accept((1.0, 0.0), age_ms=5.0)
    assert dict(gate.rejected) == {"nonfinite": 1, "stale": 1, "future_stamp": 1, "estop": 1}
    assert not gate.deadman_due(now_ns=100_000_000)  # exactly the timeout: not yet
    assert gate.deadman_due(now_ns=100_000_001) and not gate.deadman_due(now_ns=500_000_000)
    gate.estop = False
    assert gate.accept((1.0, 0.0), age_ms=5.0, now_ns=600_000_000) and gate.deadman_due(now_ns=800_000_000)
    assert gate.deadman_trips == 2
