"""Vectorized rigid-body quadrotor dynamics with rotor lag, integrated with RK4 (L2F model).

The state of N vehicles is one float64 array of shape (17, N), one row per quantity so every
row is a contiguous vector over environments:

    rows 0:3    position_m               world frame (z up)
    rows 3:7    quaternion_wxyz          body-to-world rotation
    rows 7:10   linear_velocity_m_s      world frame
    rows 10:13  angular_velocity_rad_s   body frame
    rows 13:17  rpm                      actual rotor speeds (lagging the setpoint)

As in L2F, thrust and torque come from the actual rpm, the rpm follows the setpoint with a
first-order lag, the setpoint is held for the whole step, the quaternion is renormalized and
the rpm clamped after each RK4 step. A constant disturbance force (world frame) and torque
(body frame) can act on each vehicle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim2real.quadrotor.params import CrazyflieParams

STATE_DIM = 17
POSITION = slice(0, 3)
QUATERNION = slice(3, 7)
LINEAR_VELOCITY = slice(7, 10)
ANGULAR_VELOCITY = slice(10, 13)
RPM = slice(13, 17)


@dataclass
class BatchDynamics:
    """Per-environment physical parameters (domain randomization changes them per env)."""

    mass_kg: np.ndarray  # (N,)
    thrust_coefficient: np.ndarray  # (N,) N/rpm^2
    motor_time_constant_s: np.ndarray  # (N,)
    inertia_kg_m2: np.ndarray  # (3, N) diagonal
    mixer: np.ndarray  # (3, 4) rotor thrusts -> body torque
    gravity_m_s2: float
    rpm_min: float
    rpm_max: float

    @classmethod
    def nominal(cls, params: CrazyflieParams, num_envs: int) -> "BatchDynamics":
        ones = np.ones(num_envs)
        return cls(
            mass_kg=params.mass_kg * ones,
            thrust_coefficient=params.thrust_coefficient_n_per_rpm2 * ones,
            motor_time_constant_s=params.motor_time_constant_s * ones,
            inertia_kg_m2=np.asarray(params.inertia_kg_m2, np.float64)[:, None] * ones,
            mixer=params.mixer(),
            gravity_m_s2=params.gravity_m_s2,
            rpm_min=params.rpm_min,
            rpm_max=params.rpm_max,
        )


def identity_state(num_envs: int) -> np.ndarray:
    x = np.zeros((STATE_DIM, num_envs))
    x[3] = 1.0
    return x


def state_derivative(
    x: np.ndarray,
    rpm_setpoint: np.ndarray,
    dyn: BatchDynamics,
    disturbance_accel_m_s2: np.ndarray,
    disturbance_torque_nm: np.ndarray,
) -> np.ndarray:
    """dx/dt for a (17, N) state; rpm_setpoint (4, N); disturbances (3, N) or (3, 1).

    Written as ufuncs on rows, no matmul: BLAS calls on tiny matrices are slower here and
    spawn threads that oversubscribe a small machine.
    """
    qw, qx, qy, qz = x[QUATERNION]
    w = x[ANGULAR_VELOCITY]
    wx, wy, wz = w
    rpm = x[RPM]
    thrust_n = dyn.thrust_coefficient * (rpm * rpm)  # (4, N)
    dx = np.empty_like(x)
    dx[POSITION] = x[LINEAR_VELOCITY]
    # q_dot = 0.5 * q (x) (0, w_body)
    dx[3] = -0.5 * (qx * wx + qy * wy + qz * wz)
    dx[4] = 0.5 * (qw * wx + qy * wz - qz * wy)
    dx[5] = 0.5 * (qw * wy + qz * wx - qx * wz)
    dx[6] = 0.5 * (qw * wz + qx * wy - qy * wx)
    # collective thrust along body z (third column of R(q), in L2F's form for unnormalized q)
    accel = thrust_n.sum(axis=0) / dyn.mass_kg
    dx[7] = 2.0 * (qx * qz + qw * qy) * accel
    dx[8] = 2.0 * (qy * qz - qw * qx) * accel
    dx[9] = (1.0 - 2.0 * (qx * qx + qy * qy)) * accel - dyn.gravity_m_s2
    dx[LINEAR_VELOCITY] += disturbance_accel_m_s2
    # Euler's equation in the body frame: J w_dot = tau - w x (J w)
    jw = dyn.inertia_kg_m2 * w
    torque = (dyn.mixer[:, :, None] * thrust_n).sum(axis=1) + disturbance_torque_nm
    torque[0] -= wy * jw[2] - wz * jw[1]
    torque[1] -= wz * jw[0] - wx * jw[2]
    torque[2] -= wx * jw[1] - wy * jw[0]
    dx[ANGULAR_VELOCITY] = torque / dyn.inertia_kg_m2
    dx[RPM] = (rpm_setpoint - rpm) / dyn.motor_time_constant_s
    return dx


def rk4_step(
    x: np.ndarray,
    rpm_setpoint: np.ndarray,
    dyn: BatchDynamics,
    dt_s: float,
    disturbance_accel_m_s2: np.ndarray,
    disturbance_torque_nm: np.ndarray,
) -> np.ndarray:
    """One RK4 step with the setpoint held; returns the new (17, N) state (input untouched)."""
    args = (rpm_setpoint, dyn, disturbance_accel_m_s2, disturbance_torque_nm)
    k1 = state_derivative(x, *args)
    k2 = state_derivative(x + (0.5 * dt_s) * k1, *args)
    k3 = state_derivative(x + (0.5 * dt_s) * k2, *args)
    k4 = state_derivative(x + dt_s * k3, *args)
    k2 += k3
    k2 *= 2.0
    k2 += k1
    k2 += k4
    k2 *= dt_s / 6.0
    k2 += x
    x_next = k2
    x_next[QUATERNION] /= np.sqrt((x_next[QUATERNION] ** 2).sum(axis=0))
    np.clip(x_next[RPM], dyn.rpm_min, dyn.rpm_max, out=x_next[RPM])
    return x_next


def rotation_matrices(quaternion_wxyz: np.ndarray) -> np.ndarray:
    """(4, N) unit quaternions -> (9, N) body-to-world rotation matrices, row-major."""
    w, x, y, z = quaternion_wxyz
    return np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ])
