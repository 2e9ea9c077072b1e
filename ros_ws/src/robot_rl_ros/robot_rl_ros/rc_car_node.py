"""rc_car_node: an `RCCar` (drivers/rc_car: VESC or the simulated twin) with a dead-man that brakes and the e-stop.

Takes `cmd_drive` (geometry_msgs/TwistStamped, reliable): `twist.linear.x` = speed setpoint (m/s),
`twist.angular.z` = normalized steering in [-1, 1] (left positive), stamped; stale, future-stamped or
non-finite commands are refused and counted. Publishes at `telemetry_rate_hz`: `velocity` (TwistStamped,
linear.x = measured speed, m/s), `telemetry` (Float32MultiArray: speed_m_s, erpm, duty, motor_current_a,
input_voltage_v, temp_fet_c, fault_code) and, simulated, the car's `pose` (PoseStamped, track frame).
No command for `deadman_timeout_ms` brakes the car (the drivers have their own dead-man too);
`/estop` (Bool, latched) brakes and refuses commands while true.
"""

from __future__ import annotations

import math

from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Twist, TwistStamped, Vector3
from rclpy.node import Node
from std_msgs.msg import Float32MultiArray, MultiArrayDimension, MultiArrayLayout

from drivers.rc_car.base import RCCar
from robot_rl_ros.health import NodeHealth
from robot_rl_ros.ros_io import COMMAND_QOS, STATE_QOS, Diagnostics, declare, header, main_for, stamp_ns, subscribe_estop
from robot_rl_ros.stamps import age_ms, monotonic_to_wall_ns
from robot_rl_ros.vehicle_gate import VehicleGate

TELEMETRY_FIELDS = ["speed_m_s", "erpm", "duty", "motor_current_a", "input_voltage_v", "temp_fet_c", "fault_code"]
SIM_PERIOD_S = 0.1  # the simulated twin advances in fixed 0.1 s control periods


def make_car(backend: str, port: str, track: str, deadman_timeout_ms: float) -> RCCar:
    if backend == "sim":
        from drivers.rc_car.sim import SimRCCar

        return SimRCCar(track=track, deadman_timeout_s=deadman_timeout_ms / 1e3)
    if backend == "vesc":
        from drivers.rc_car.vesc import VescConfig, VescRCCar

        return VescRCCar(VescConfig(port=port, deadman_timeout_s=deadman_timeout_ms / 1e3))
    raise ValueError(f"rc_car backend '{backend}' is unknown; set the parameter backend to sim or vesc.")


def yaw_quaternion(yaw_rad: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw_rad / 2), w=math.cos(yaw_rad / 2))


class RCCarNode(Node):
    def __init__(self):
        super().__init__("rc_car")
        backend = declare(self, "backend", "sim", "car driver: sim (simulated twin) or vesc (VESC over serial)")
        port = declare(self, "port", "/dev/ttyACM0", "vesc: serial port")
        track = declare(self, "track", "loop", "sim: track name (sim2real.rc_car)")
        deadman_timeout_ms = declare(self, "deadman_timeout_ms", 250.0, "no command for this long brakes the car")
        max_age_ms = declare(self, "max_command_age_ms", 200.0, "commands stamped earlier than this are refused as stale")
        rate_hz = declare(self, "telemetry_rate_hz", 10.0, "telemetry rate, Hz (sim: also the simulation's real-time pace, 10 Hz)")
        self.frame_id = declare(self, "frame_id", "base_link", "frame of velocity")
        self.map_frame_id = declare(self, "map_frame_id", "track", "sim: frame of pose")
        if backend == "sim" and abs(rate_hz * SIM_PERIOD_S - 1.0) > 1e-6:
            raise ValueError("the simulated car advances 0.1 s per tick: set telemetry_rate_hz to 10 for backend sim.")
        self.health = NodeHealth()
        self.gate = VehicleGate(deadman_timeout_ms, max_age_ms, rejected=self.health.rejected)
        self.sim = backend == "sim"
        self.car = make_car(backend, port, track, deadman_timeout_ms)
        self.car.connect()
        self.car.brake()  # braked until the first command
        self.velocity_pub = self.create_publisher(TwistStamped, "velocity", STATE_QOS)
        self.telemetry_pub = self.create_publisher(Float32MultiArray, "telemetry", STATE_QOS)
        self.pose_pub = self.create_publisher(PoseStamped, "pose", STATE_QOS) if self.sim else None
        self.create_subscription(TwistStamped, "cmd_drive", self._on_command, COMMAND_QOS)
        subscribe_estop(self, self._on_estop)
        self.create_timer(1.0 / rate_hz, self._tick)
        self.diagnostics = Diagnostics(self, self.health, extra=self._counters)
        self._layout = MultiArrayLayout(dim=[MultiArrayDimension(label=",".join(TELEMETRY_FIELDS), size=len(TELEMETRY_FIELDS), stride=len(TELEMETRY_FIELDS))])

    def _on_command(self, msg: TwistStamped) -> None:
        speed_m_s, steer = msg.twist.linear.x, msg.twist.angular.z
        if not self.gate.accept((speed_m_s, steer), age_ms(stamp_ns(msg.header))):
            return
        if abs(steer) > 1.0:
            self.health.reject("steer_clipped")  # accepted, clipped to [-1, 1] by the driver
        self.car.command(speed_m_s, steer)
        self.health.rate("command").tick()

    def _on_estop(self, engaged: bool) -> None:
        if engaged and not self.gate.estop:
            self.car.brake()
            self.gate.clear()
            self.get_logger().warn("e-stop engaged: car braked, commands refused until /estop is false")
        self.gate.estop = engaged

    def _tick(self) -> None:
        if self.gate.deadman_due():
            self.car.brake()
            self.get_logger().warn(f"no command for {self.gate.deadman_timeout_ms:.0f} ms: braking")
        if self.gate.estop:
            self.car.brake()  # every tick: nothing the driver does may release it
        if self.sim:
            self.car.advance()  # one 0.1 s period of simulated time per tick: real-time pace
        telemetry = self.car.latest_telemetry()
        if telemetry is None:
            self.health.set_status(1, "no telemetry yet")
            return
        stamp = header(monotonic_to_wall_ns(telemetry.stamp_ns), self.frame_id)
        self.velocity_pub.publish(TwistStamped(header=stamp, twist=Twist(linear=Vector3(x=float(telemetry.speed_m_s)))))
        self.telemetry_pub.publish(Float32MultiArray(layout=self._layout, data=[float(getattr(telemetry, f)) for f in TELEMETRY_FIELDS]))
        if self.pose_pub is not None:
            fleet = self.car.fleet
            self.pose_pub.publish(PoseStamped(header=header(stamp_ns(stamp), self.map_frame_id), pose=Pose(
                position=Point(x=float(fleet.x_m[0]), y=float(fleet.y_m[0]), z=0.0), orientation=yaw_quaternion(float(fleet.yaw_rad[0])))))
        self.health.extra["fault_code"] = telemetry.fault_code
        self.health.rate("telemetry").tick()

    def _counters(self) -> None:
        braking = bool(getattr(self.car, "deadman_braking", False))
        self.health.extra.update(estop=self.gate.estop, deadman_trips=self.gate.deadman_trips, driver_deadman_braking=braking,
                                 commands_accepted=self.gate.accepted)
        if hasattr(self.car, "deadman_trips"):
            self.health.extra["driver_deadman_trips"] = self.car.deadman_trips
        if self.gate.estop:
            self.health.set_status(2, "e-stop engaged: braked")
        elif self.health.extra.get("fault_code", 0):
            self.health.set_status(2, f"VESC fault code {self.health.extra['fault_code']}")
        elif braking:
            self.health.set_status(1, "braked: no fresh commands")
        else:
            self.health.set_status(0, "driving")

    def close(self) -> None:
        self.car.close()  # brakes and centres the steering


def main() -> None:
    main_for(RCCarNode)


if __name__ == "__main__":
    main()
