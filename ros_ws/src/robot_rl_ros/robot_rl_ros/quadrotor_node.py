"""quadrotor_node: a `Quadrotor` (drivers/quadrotor: the Crazyflie driver, over its radio or a simulated vehicle).

Takes `cmd_position` (PoseStamped: position m, yaw from the orientation) and `cmd_velocity` (TwistStamped:
linear m/s, angular.z yaw rate rad/s), reliable, stamped; stale, future-stamped or non-finite setpoints
are refused and counted, the rest go through the driver's geofence. Publishes the state at
`state_rate_hz`: `pose` (PoseStamped) and `velocity` (TwistStamped, world frame) — nav_msgs/Odometry
is not among the installed message wheels. Setpoints that stop for `deadman_timeout_ms` make the
driver's own watchdog send the stop setpoint (motors off); `/estop` (Bool, latched) stops the motors
(`estop_action` stop: recoverable; emergency: the firmware's emergency stop, until power-cycled) and
refuses setpoints while true.
"""

from __future__ import annotations

import math

from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion, Twist, TwistStamped, Vector3
from rclpy.node import Node

from drivers.errors import DeviceError
from drivers.quadrotor.crazyflie import CrazyflieQuadrotor
from drivers.quadrotor.safety import QuadrotorSafetyConfig
from robot_rl_ros.health import NodeHealth
from robot_rl_ros.ros_io import COMMAND_QOS, STATE_QOS, Diagnostics, declare, header, main_for, stamp_ns, subscribe_estop
from robot_rl_ros.stamps import age_ms, monotonic_to_wall_ns
from robot_rl_ros.vehicle_gate import VehicleGate

ESTOP_ACTIONS = ("stop", "emergency")


def yaw_quaternion(yaw_rad: float) -> Quaternion:
    return Quaternion(x=0.0, y=0.0, z=math.sin(yaw_rad / 2), w=math.cos(yaw_rad / 2))


def yaw_deg_from(q) -> float:
    return math.degrees(math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z)))


class QuadrotorNode(Node):
    def __init__(self):
        super().__init__("quadrotor")
        backend = declare(self, "backend", "sim", "sim (simulated Crazyflie behind the real driver) or crazyflie (radio, cflib)")
        uri = declare(self, "uri", "radio://0/80/2M/E7E7E7E7E7", "crazyflie: the radio URI")
        safety = QuadrotorSafetyConfig(
            geofence_min_m=tuple(declare(self, "geofence_min_m", [-1.0, -1.0, 0.0], "geofence lower corner, m")),
            geofence_max_m=tuple(declare(self, "geofence_max_m", [1.0, 1.0, 1.5], "geofence upper corner, m")),
            geofence_margin_m=declare(self, "geofence_margin_m", 0.3, "measured position this far outside the fence: emergency stop"),
            deadman_timeout_ms=declare(self, "deadman_timeout_ms", 250.0, "no setpoint for this long: motors off"),
            max_speed_m_s=declare(self, "max_speed_m_s", 1.0, "velocity setpoints are scaled down to this"),
            max_tilt_deg=declare(self, "max_tilt_deg", 75.0, "measured roll/pitch beyond this: emergency stop"),
        )
        max_age_ms = declare(self, "max_command_age_ms", 200.0, "setpoints stamped earlier than this are refused as stale")
        state_rate_hz = declare(self, "state_rate_hz", 50.0, "rate of pose / velocity, Hz")
        self.estop_action = declare(self, "estop_action", "stop", "on /estop: stop (motors off, recoverable) or emergency (latched until power-cycled)")
        self.frame_id = declare(self, "frame_id", "world", "frame of pose, velocity and setpoints")
        if self.estop_action not in ESTOP_ACTIONS:
            raise ValueError(f"estop_action '{self.estop_action}' is unknown; set it to stop or emergency.")
        if backend == "sim":
            from robot_rl_ros.quadrotor_sim import SimCrazyflieLink

            self.link = SimCrazyflieLink(max_speed_m_s=safety.max_speed_m_s)
        elif backend == "crazyflie":
            self.link = None  # the driver opens its cflib radio
        else:
            raise ValueError(f"quadrotor backend '{backend}' is unknown; set the parameter backend to sim or crazyflie.")
        self.health = NodeHealth()
        self.gate = VehicleGate(safety.deadman_timeout_ms, max_age_ms, rejected=self.health.rejected)
        self.drone = CrazyflieQuadrotor(uri, safety, link=self.link)
        self.drone.connect()
        self.pose_pub = self.create_publisher(PoseStamped, "pose", STATE_QOS)
        self.velocity_pub = self.create_publisher(TwistStamped, "velocity", STATE_QOS)
        self.create_subscription(PoseStamped, "cmd_position", self._on_position, COMMAND_QOS)
        self.create_subscription(TwistStamped, "cmd_velocity", self._on_velocity, COMMAND_QOS)
        subscribe_estop(self, self._on_estop)
        self.create_timer(1.0 / state_rate_hz, self._publish_state)
        self.diagnostics = Diagnostics(self, self.health, extra=self._counters)

    # ---- setpoints --------------------------------------------------------------------------------
    def _on_position(self, msg: PoseStamped) -> None:
        p = msg.pose.position
        yaw_deg = yaw_deg_from(msg.pose.orientation)
        if self.gate.accept((p.x, p.y, p.z, yaw_deg), age_ms(stamp_ns(msg.header))):
            self._send(lambda: self.drone.send_position((p.x, p.y, p.z), yaw_deg))

    def _on_velocity(self, msg: TwistStamped) -> None:
        v, yaw_rate_rad_s = msg.twist.linear, msg.twist.angular.z
        if self.gate.accept((v.x, v.y, v.z, yaw_rate_rad_s), age_ms(stamp_ns(msg.header))):
            self._send(lambda: self.drone.send_velocity((v.x, v.y, v.z), math.degrees(yaw_rate_rad_s)))

    def _send(self, send) -> None:
        try:
            send()
        except DeviceError:  # emergency-stopped: the reason is on /diagnostics
            self.health.reject("emergency_stopped")
            return
        self.health.rate("setpoint").tick()

    def _on_estop(self, engaged: bool) -> None:
        if engaged and not self.gate.estop:
            self.gate.estop = True  # first: a setpoint racing this callback is refused
            if self.estop_action == "emergency":
                self.drone.emergency_stop("ROS /estop")
            else:
                self.drone.stop()
            self.get_logger().warn(f"e-stop engaged: motors off ({self.estop_action}), setpoints refused until /estop is false")
        self.gate.estop = engaged

    # ---- state ----------------------------------------------------------------------------------
    def _publish_state(self) -> None:
        state = self.drone.latest_state()
        if state is None:
            return
        msg_header = header(monotonic_to_wall_ns(state.stamp_ns), self.frame_id)
        x, y, z = state.position_m
        self.pose_pub.publish(PoseStamped(header=msg_header, pose=Pose(position=Point(x=x, y=y, z=z), orientation=yaw_quaternion(math.radians(state.yaw_deg)))))
        vx, vy, vz = state.velocity_m_s
        self.velocity_pub.publish(TwistStamped(header=msg_header, twist=Twist(linear=Vector3(x=vx, y=vy, z=vz))))
        self.health.ages_ms["state"] = age_ms(msg_header.stamp.sec * 1_000_000_000 + msg_header.stamp.nanosec)
        self.health.rate("state").tick()

    def _counters(self) -> None:
        self.health.extra.update(estop=self.gate.estop, deadman_stops=self.drone.deadman_stops,
                                 clamped_setpoints=self.drone.safety.clamped_setpoints, emergency=self.drone.emergency_reason or "")
        if self.link is not None:
            self.health.extra["sim.mode"] = self.link.mode
        if self.drone.emergency_reason is not None:
            self.health.set_status(2, f"emergency-stopped ({self.drone.emergency_reason}): power-cycle the vehicle and restart the node")
        elif self.gate.estop:
            self.health.set_status(2, "e-stop engaged: motors off")
        else:
            self.health.set_status(0, "ok")

    def close(self) -> None:
        self.drone.close()  # stop setpoint, then hand back to the high-level commander


def main() -> None:
    main_for(QuadrotorNode)


if __name__ == "__main__":
    main()
