"""Excitation flights for quadrotor system identification, flown in the L2F simulator.

A geometric position/attitude controller flies between random waypoints while a random,
piecewise-constant per-motor offset is added to its commands. The offsets excite all four
rotors independently (collective thrust and roll/pitch/yaw torques) with steps that show the
motor lag; the waypoints keep the vehicle in the air and moving. The controller knows the
rotor speeds (the simulator's state): it only has to produce a rich, stable flight, it is
not a model of the Crazyflie firmware.

Logged per step (what a motion-capture + IMU log has, no rotor speeds): position (3),
quaternion wxyz (4), linear velocity (3), body angular velocity (3); and the commanded
normalized rpm setpoints (4).
"""

from __future__ import annotations

import numpy as np

from sim2real.quadrotor.dynamics import (
    ANGULAR_VELOCITY,
    LINEAR_VELOCITY,
    POSITION,
    QUATERNION,
    RPM,
    BatchDynamics,
    identity_state,
    rk4_step,
    rotation_matrices,
)
from sim2real.quadrotor.params import CrazyflieParams
from sim2real.sysid.logs import TrajectoryLog

LOGGED_ROWS = np.r_[0:13]  # position, quaternion, linear and angular velocity: rpm (rows 13:17) is not logged
STATE_NAMES = [
    *(f"position_m_{a}" for a in "xyz"), *(f"quaternion_{a}" for a in "wxyz"),
    *(f"linear_velocity_m_s_{a}" for a in "xyz"), *(f"angular_velocity_rad_s_{a}" for a in "xyz"),
]
ACTION_NAMES = [f"rpm_setpoint_normalized_m{i}" for i in range(1, 5)]


class WaypointController:
    """PD on position, geometric attitude control, thrust allocation, motor-lag compensation."""

    def __init__(self, params: CrazyflieParams, position_hz: float = 0.6, attitude_hz: float = 4.0,
                 motor_response_s: float = 0.03, max_error_m: float = 0.1):
        self.params, self.max_error_m = params, max_error_m
        wp, wa = 2 * np.pi * position_hz, 2 * np.pi * attitude_hz
        self.kp, self.kd = wp * wp, 2.0 * wp  # critically damped translational loop, 1/s^2 and 1/s
        self.kr, self.kw = wa * wa, 1.4 * wa
        self.inertia = np.asarray(params.inertia_kg_m2)
        allocation = np.vstack([np.ones(4), params.mixer()])  # [collective; roll; pitch; yaw] = A @ thrusts
        self.allocation_inv = np.linalg.inv(allocation)
        # commanding past the target speeds the lagging motors up from tau to motor_response_s
        self.lead = params.motor_time_constant_s / motor_response_s

    def rpm_setpoint(self, x: np.ndarray, target_m: np.ndarray) -> np.ndarray:
        """Rotor speed setpoints (4,) for the single-vehicle state column `x` (17,)."""
        p = self.params
        pos, vel, w, rpm = x[POSITION], x[LINEAR_VELOCITY], x[ANGULAR_VELOCITY], x[RPM]
        rot = rotation_matrices(x[QUATERNION][:, None])[:, 0].reshape(3, 3)
        error = target_m - pos
        error *= min(1.0, self.max_error_m / max(np.linalg.norm(error), 1e-9))  # far waypoints: cruise, not saturate
        accel = self.kp * error - self.kd * vel + np.array([0.0, 0.0, p.gravity_m_s2])
        accel[2] = max(accel[2], 0.3 * p.gravity_m_s2)
        horizontal = np.linalg.norm(accel[:2])
        if horizontal > accel[2]:  # tilt at most 45 degrees
            accel[:2] *= accel[2] / horizontal
        collective_n = p.mass_kg * accel @ rot[:, 2]
        z_d = accel / np.linalg.norm(accel)
        y_d = np.cross(z_d, [1.0, 0.0, 0.0])
        y_d /= np.linalg.norm(y_d)
        rot_d = np.column_stack([np.cross(y_d, z_d), y_d, z_d])  # yaw held at zero
        err = 0.5 * (rot_d.T @ rot - rot.T @ rot_d)
        e_r = np.array([err[2, 1], err[0, 2], err[1, 0]])
        torque = self.inertia * (-self.kr * e_r - self.kw * w) + np.cross(w, self.inertia * w)
        thrusts = self.allocation_inv @ np.concatenate([[collective_n], torque])
        rpm_target = np.sqrt(np.clip(thrusts, 0.0, None) / p.thrust_coefficient_n_per_rpm2)
        return rpm + self.lead * (rpm_target - rpm)


def record_flight(
    true_params: CrazyflieParams,
    duration_s: float = 20.0,
    *,
    seed: int = 0,
    dt_s: float = 0.01,
    excitation_action: float = 0.06,
    excitation_hold_s=(0.05, 0.3),
    waypoint_box_m: float = 0.5,
    waypoint_hold_s: float = 2.0,
    measurement_noise=None,
    warmup_s: float = 2.0,
    action_delay_steps: int = 0,
) -> TrajectoryLog:
    """Flies `duration_s` (after `warmup_s` of unlogged flight) and returns the log.

    `measurement_noise`, if given, is a (13,) standard deviation added to the logged states.
    The controller is tuned on `true_params` only for stability; the fit never sees them.
    `action_delay_steps`: the vehicle applies each command that many steps after it was logged (a radio and
    firmware delay the fit does not model, as on hardware).
    """
    if action_delay_steps < 0:
        raise ValueError(f"action_delay_steps must be >= 0, got {action_delay_steps}.")
    rng = np.random.default_rng(seed)
    controller = WaypointController(true_params)
    dyn = BatchDynamics.nominal(true_params, 1)
    zeros = np.zeros((3, 1))
    x = identity_state(1)
    x[RPM] = true_params.hover_rpm()
    warmup, steps = round(warmup_s / dt_s), round(duration_s / dt_s)
    states, actions = [], []
    target = np.zeros(3)
    offset, offset_steps_left, target_steps_left = np.zeros(4), 0, 0
    in_flight = [true_params.rpm_to_action(np.full(4, true_params.hover_rpm()))] * action_delay_steps
    for t in range(warmup + steps):
        if target_steps_left <= 0:
            target = rng.uniform(-waypoint_box_m, waypoint_box_m, 3)
            target_steps_left = round(waypoint_hold_s / dt_s)
        if offset_steps_left <= 0:
            offset = rng.uniform(-excitation_action, excitation_action, 4)
            offset_steps_left = round(rng.uniform(*excitation_hold_s) / dt_s)
        setpoint_rpm = controller.rpm_setpoint(x[:, 0], target)
        action = np.clip(true_params.rpm_to_action(setpoint_rpm) + offset, -1.0, 1.0)
        if t >= warmup:
            states.append(x[LOGGED_ROWS, 0].copy())
            actions.append(action)
        in_flight.append(action)
        applied = in_flight.pop(0)
        x = rk4_step(x, true_params.action_to_rpm(applied)[:, None], dyn, dt_s, zeros, zeros)
        target_steps_left -= 1
        offset_steps_left -= 1
    states.append(x[LOGGED_ROWS, 0].copy())
    states = np.array(states)
    if measurement_noise is not None:
        states = states + rng.standard_normal(states.shape) * np.asarray(measurement_noise)
        states[:, 3:7] /= np.linalg.norm(states[:, 3:7], axis=1, keepdims=True)
    return TrajectoryLog(states, np.array(actions), dt_s, STATE_NAMES, ACTION_NAMES)
