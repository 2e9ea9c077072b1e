"""Franka arm over franky (libfranka's 1 kHz loop), commanded at the policy rate.

Pose targets are streamed as asynchronous franky motions, each replacing the last one seamlessly:
`pose_controller="waypoint"` plans a jerk-limited path to every new target (scaled by the relative
dynamics factor); `"impedance"` updates the reference of one long-running Cartesian impedance
controller (torque level, compliant on contact). libfranka errors become an `ArmFault` in the state;
recoverable ones (reflexes) are recovered automatically before the next command, a bounded number
of times; a lost connection is not.
"""

from __future__ import annotations

import socket
import threading
from typing import Literal

import numpy as np

from drivers.arms.base import Arm, ArmFault, ArmMode, ArmState, Gripper, now_ns
from drivers.errors import ArmFaultError, DeviceConnectionError, DeviceError, require

_PREEMPTED = "preempted"  # libfranka's message when one of our own motions replaces another
FCI_PORT = 1337  # libfranka's TCP command port on the Control box


def fci_unreachable(host: str, timeout_s: float = 2.0) -> str | None:
    """None if something answers on the FCI port, else why not (a probe, so connect() fails fast)."""
    try:
        with socket.create_connection((host, FCI_PORT), timeout=timeout_s):
            return None
    except socket.timeout:
        return f"no answer on port {FCI_PORT} within {timeout_s:.0f} s"
    except OSError as exc:
        return f"port {FCI_PORT}: {exc.strerror or exc}"


class FrankyGripper(Gripper):
    # A width read waits for the hand's next state packet (~1 ms); at 0.05 m/s finger speed a 30 ms old
    # width is off by at most 1.5 mm, so state reads (200 Hz from the watchdog) reuse it that long.
    width_max_age_ns = 30_000_000

    def __init__(self, gripper, speed_m_s: float, host: str):
        self._gripper = gripper
        self._speed_m_s = speed_m_s
        self._host = host
        self._width = (float("nan"), 0)  # (width_m, read at ns)

    def _call(self, what: str, fn, *args, **kwargs) -> bool:
        self._width = (float("nan"), 0)
        try:
            return bool(fn(*args, **kwargs))
        except Exception as exc:  # franky.GripperException / NetworkException: one sentence for the user
            raise DeviceConnectionError(f"the Franka Hand at {self._host} failed to {what} ({exc}); run gripper homing in Desk and retry.") from None

    def open(self) -> bool:
        return self._call("open", self._gripper.open, self._speed_m_s)

    def close(self) -> bool:
        return self._call("close", self._gripper.move, 0.0, self._speed_m_s)

    def grasp(self, width_m: float, force_n: float, tolerance_m: float = 0.01) -> bool:
        return self._call("grasp", self._gripper.grasp, width_m, self._speed_m_s, force_n, epsilon_inner=tolerance_m, epsilon_outer=tolerance_m)

    def width_m(self) -> float:
        width_m, read_ns = self._width
        if now_ns() - read_ns < self.width_max_age_ns:
            return width_m
        try:
            width_m = float(self._gripper.width)
        except Exception:  # a missing width reading must not break a state read
            return float("nan")
        self._width = (width_m, now_ns())
        return width_m


class FrankyArm(Arm):
    def __init__(
        self,
        host: str,
        *,
        relative_dynamics_factor: float = 0.2,
        realtime: Literal["enforce", "ignore"] = "enforce",
        pose_controller: Literal["waypoint", "impedance"] = "waypoint",
        translational_stiffness_n_m: float = 1000.0,
        rotational_stiffness_nm_rad: float = 60.0,
        velocity_command_ttl_ms: int = 200,
        collision_force_n: float | None = None,
        collision_torque_nm: float | None = None,
        gripper: bool = True,
        gripper_speed_m_s: float = 0.05,
        auto_recover: bool = True,
        max_auto_recoveries: int = 3,
    ):
        self.host = host
        self.relative_dynamics_factor = relative_dynamics_factor
        self.realtime = realtime
        self.pose_controller = pose_controller
        self.translational_stiffness_n_m = translational_stiffness_n_m
        self.rotational_stiffness_nm_rad = rotational_stiffness_nm_rad
        self.velocity_command_ttl_ms = velocity_command_ttl_ms
        self.collision_force_n = collision_force_n
        self.collision_torque_nm = collision_torque_nm
        self.has_gripper = gripper
        self.gripper_speed_m_s = gripper_speed_m_s
        self.auto_recover = auto_recover
        self.max_auto_recoveries = max_auto_recoveries
        self.auto_recoveries = 0
        self._franky = None
        self._robot = None
        self._impedance_motion = None
        self._mode = ArmMode.IDLE
        self._fault: ArmFault | None = None
        self._last_state: ArmState | None = None
        self._lock = threading.RLock()  # the watchdog thread calls hold() while the actor commands

    # ---- connection ----------------------------------------------------------------------
    def connect(self) -> None:
        if self._robot is not None:
            return
        self._franky = require("franky", "pip install franky-control")
        franky = self._franky
        realtime = franky.RealtimeConfig.Enforce if self.realtime == "enforce" else franky.RealtimeConfig.Ignore
        why = fci_unreachable(self.host)
        if why is not None:
            raise self._connect_error(why)
        try:
            robot = franky.Robot(self.host, relative_dynamics_factor=self.relative_dynamics_factor, realtime_config=realtime)
        except Exception as exc:
            raise self._connect_error(exc) from None
        if self.collision_force_n is not None or self.collision_torque_nm is not None:
            # Franka's own 1 kHz reflex: the hardware stops even if Python stalls
            robot.set_collision_behavior(self.collision_torque_nm or 20.0, self.collision_force_n or 30.0)
        self._robot = robot
        self._mode = ArmMode.IDLE
        self._fault = None
        self.auto_recoveries = 0
        self._impedance_motion = None
        if self.has_gripper:
            try:
                self.gripper = FrankyGripper(franky.Gripper(self.host), self.gripper_speed_m_s, self.host)
            except Exception as exc:
                raise DeviceConnectionError(
                    f"no Franka Hand answered at {self.host} ({exc}); check the hand is attached and enabled in Desk, or pass gripper=False."
                ) from None

    def _connect_error(self, exc: Exception | str) -> DeviceError:
        text = str(exc)
        if "realtime" in text.lower():
            return DeviceConnectionError(
                f"libfranka needs a realtime kernel and refused to start ({text}); boot a PREEMPT_RT kernel and allow "
                "realtime priority (see `robot-rl doctor`), or pass realtime='ignore' for simulation."
            )
        return DeviceConnectionError(
            f"could not reach the Franka at {self.host} ({text}); check the cable and IP, that the brakes are open and FCI is enabled in Desk."
        )

    def close(self) -> None:
        if self._robot is None:
            return
        if self._fault is None or self._fault.recoverable:
            try:
                self.hold()
            except DeviceError:
                pass
        self._robot = None
        self._impedance_motion = None
        self.__dict__.pop("gripper", None)  # libfranka closes the hand's connection when the object goes

    # ---- faults ---------------------------------------------------------------------------
    def _record(self, exc: BaseException) -> None:
        """Turn a libfranka exception into a fault (or ignore our own preemptions)."""
        franky = self._franky
        text = str(exc)
        if _PREEMPTED in text.lower():
            return
        if isinstance(exc, franky.NetworkException) or text == "Net Exception":
            reason = f"lost the connection to the Franka at {self.host} ({text}); check the cable and that the robot is on, then call recover() to reconnect"
            self._fault = ArmFault(reason, now_ns(), recoverable=False)
        else:
            reason = f"libfranka stopped the motion ({text}); clear the cause (collision, joint limit) before recovering"
            self._fault = ArmFault(reason, now_ns(), recoverable=True)
        self._mode = ArmMode.FAULT
        self._impedance_motion = None

    def _poll(self) -> None:
        if self._fault is not None:
            return
        try:
            self._robot.poll_motion()
        except Exception as exc:
            self._record(exc)

    def _ready_for_command(self) -> None:
        if self._robot is None:
            raise DeviceError(f"the FrankyArm for {self.host} is not connected; call connect() or use it as a context manager.")
        self._poll()
        if self._fault is None:
            return
        if self.auto_recover and self._fault.recoverable and self.auto_recoveries < self.max_auto_recoveries:
            self.auto_recoveries += 1
            if self.recover():
                return
        raise ArmFaultError(f"the Franka at {self.host} is faulted: {self._fault.reason}.")

    def recover(self) -> bool:
        with self._lock:
            if self._fault is None:
                return True
            try:
                if self._fault.recoverable:
                    self._robot.recover_from_errors()
                else:
                    self._robot = None
                    self.connect()  # a fresh libfranka connection after a network loss
            except Exception as exc:
                if isinstance(exc, DeviceError):
                    return False
                self._record(exc)
                return False
            self._fault = None
            self._mode = ArmMode.IDLE
            return True

    # ---- state ------------------------------------------------------------------------------
    def state(self) -> ArmState:
        with self._lock:
            self._poll()
            if self._fault is not None and not self._fault.recoverable and self._last_state is not None:
                return _with_fault(self._last_state, self._fault)
            try:
                s = self._robot.state
                stamp_ns = now_ns()
                pose = s.O_T_EE
                twist = s.O_dP_EE_est
            except Exception as exc:
                self._record(exc)
                if self._last_state is None:
                    raise ArmFaultError(f"the Franka at {self.host} is faulted: {self._fault.reason}.") from None
                return _with_fault(self._last_state, self._fault)
            state = ArmState(
                stamp_ns=stamp_ns,
                joint_pos_rad=np.asarray(s.q, dtype=float).copy(),
                joint_vel_rad_s=np.asarray(s.dq, dtype=float).copy(),
                ee_pos_m=np.asarray(pose.translation, dtype=float).reshape(3).copy(),
                ee_quat_xyzw=np.asarray(pose.quaternion, dtype=float).reshape(4).copy(),
                ee_twist=np.zeros(6) if twist is None else np.concatenate([np.ravel(twist.linear), np.ravel(twist.angular)]),
                # libfranka reports what the robot applies to the world; ArmState carries what the world applies
                ee_wrench=-np.asarray(s.O_F_ext_hat_K, dtype=float).reshape(6),
                gripper_width_m=self.gripper.width_m() if self.has_gripper else float("nan"),
                mode=self._mode,
                fault=self._fault,
                robot_time_ns=int(s.time.to_msec()) * 1_000_000,
            )
            self._last_state = state
            return state

    # ---- commands ---------------------------------------------------------------------------
    def _switch_to(self, mode: ArmMode) -> None:
        if self._mode not in (mode, ArmMode.IDLE):
            self.hold()
        self._mode = mode

    def _move(self, motion) -> None:
        try:
            self._robot.move(motion, asynchronous=True)
        except Exception as exc:
            self._record(exc)
            raise ArmFaultError(f"the Franka at {self.host} refused the command: {self._fault.reason}.") from None

    def command_pose(self, ee_pos_m, ee_quat_xyzw) -> None:
        franky = self._franky
        with self._lock:
            self._ready_for_command()
            target = franky.Affine(np.asarray(ee_pos_m, dtype=float), np.asarray(ee_quat_xyzw, dtype=float))
            self._switch_to(ArmMode.POSE)
            if self.pose_controller == "waypoint":
                self._move(franky.CartesianMotion(target))
                return
            if self._impedance_motion is None or not self._robot.is_in_control:
                motion = franky.CartesianImpedanceTrackingMotion(
                    translational_stiffness=self.translational_stiffness_n_m,
                    rotational_stiffness=self.rotational_stiffness_nm_rad,
                )
                # seed with the measured pose so starting the controller does not jerk the arm
                motion.set_reference(franky.CartesianReference(target=self._robot.current_pose.end_effector_pose))
                self._move(motion)
                self._impedance_motion = motion
            self._impedance_motion.set_reference(franky.CartesianReference(target=target))

    def command_cartesian_velocity(self, twist) -> None:
        franky = self._franky
        twist = np.asarray(twist, dtype=float)
        with self._lock:
            self._ready_for_command()
            self._switch_to(ArmMode.CARTESIAN_VELOCITY)
            target = franky.Twist(twist[:3], twist[3:])
            self._move(franky.CartesianVelocityMotion(target, duration=franky.Duration(self.velocity_command_ttl_ms)))

    def command_joint_velocity(self, joint_vel_rad_s) -> None:
        franky = self._franky
        with self._lock:
            self._ready_for_command()
            self._switch_to(ArmMode.JOINT_VELOCITY)
            velocity = [float(v) for v in np.asarray(joint_vel_rad_s).reshape(7)]
            self._move(franky.JointVelocityMotion(velocity, duration=franky.Duration(self.velocity_command_ttl_ms)))

    def hold(self) -> None:
        franky = self._franky
        with self._lock:
            if self._robot is None or self._mode is ArmMode.IDLE:
                return
            if self._mode is ArmMode.FAULT:
                return  # libfranka already stopped the arm
            stop = {
                ArmMode.POSE: franky.TorqueStopMotion if self.pose_controller == "impedance" else franky.CartesianStopMotion,
                ArmMode.CARTESIAN_VELOCITY: franky.CartesianVelocityStopMotion,
                ArmMode.JOINT_VELOCITY: franky.JointVelocityStopMotion,
            }[self._mode]
            try:
                if self._robot.is_in_control:
                    self._robot.move(stop(), asynchronous=True)
                self._robot.join_motion(timeout=2.0)
            except Exception as exc:
                self._record(exc)
            self._impedance_motion = None
            if self._fault is None:
                self._mode = ArmMode.IDLE


def _with_fault(state: ArmState, fault: ArmFault) -> ArmState:
    from dataclasses import replace

    return replace(state, mode=ArmMode.FAULT, fault=fault)
