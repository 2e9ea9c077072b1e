"""Fit the Crazyflie model's thrust coefficient, motor time constant and mass to a flight log.

What the log determines (rotor speeds are not logged, only commanded setpoints):
- Translation: ``v_dot = (k_f / m) * sum(rpm^2) * body_z - g``. Gravity is known, so the
  commanded collective (it must hold m g in hover) fixes the ratio ``k_f / m``, not each one.
- Rotation: ``J w_dot = k_f * mixer @ rpm^2 - w x J w``. With the inertia J and the rotor
  geometry known, differential commands fix ``k_f`` itself, and then ``m = k_f / (k_f / m)``.
  The excitation flight adds independent per-motor offsets, so roll and pitch torques are
  excited all the time; without them (pure collective commands) only ``k_f / m`` is identifiable.
- Motor lag: rotor speeds follow the commands through ``rpm_dot = (setpoint - rpm) / tau``; the
  offsets are steps every 50-300 ms, so the delay between a command step and the acceleration it
  causes fixes ``tau``. The rotor speeds the fit needs are rebuilt from the logged commands with
  the candidate ``tau`` (the same RK4 recursion the simulator uses, exact for this linear ODE).

The inertia, arm geometry, torque ratio, gravity and rpm range are taken as known (a wrong J
biases ``k_f`` and ``m`` by the same factor). Residuals are velocity and angular velocity errors
of short rollouts from logged states (multiple shooting), each channel scaled by its spread in
the log. Noise in a window's start state persists through its rollout and biases short windows:
with gyro noise 0.05 rad/s per 10 ms sample, 0.2 s windows gave errors up to 5%, 0.5 s windows
up to 2%; with 0.01 rad/s (4x a BMI088's spec), 0.5 s windows stay within 0.7% (6 flights).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from sim2real.quadrotor.dynamics import (
    ANGULAR_VELOCITY,
    LINEAR_VELOCITY,
    POSITION,
    RPM,
    BatchDynamics,
    STATE_DIM,
    rk4_step,
)
from sim2real.quadrotor.params import CrazyflieParams
from sim2real.sysid.fitter import FitResult, Parameter, fit_parameters, shooting_windows
from sim2real.sysid.logs import TrajectoryLog

FITTED = ("thrust_coefficient_n_per_rpm2", "motor_time_constant_s", "mass_kg")
LOGGED_DIM = 13
# channels scored by the fit: linear velocity (7:10) and body angular velocity (10:13)
SCORED = np.r_[7:13]


def rebuild_rpm(setpoints_rpm: np.ndarray, motor_time_constant_s: float, dt_s: float, rpm0: np.ndarray) -> np.ndarray:
    """Rotor speeds (T + 1, 4) under held setpoints (T, 4), as the simulator's RK4 step computes them."""
    z = -dt_s / motor_time_constant_s
    decay = 1.0 + z + z * z / 2.0 + z**3 / 6.0 + z**4 / 24.0  # RK4's growth factor for y' = -y / tau
    rpm = np.empty((len(setpoints_rpm) + 1, 4))
    rpm[0] = rpm0
    for t, setpoint in enumerate(setpoints_rpm):
        rpm[t + 1] = setpoint + (rpm[t] - setpoint) * decay
    return rpm


class QuadrotorShootingModel:
    """Rolls the L2F dynamics `horizon` steps from logged states, all windows at once."""

    def __init__(self, log: TrajectoryLog, base_params: CrazyflieParams, *, horizon_steps: int = 50,
                 stride_steps: int = 5, settle_s: float = 1.0):
        if log.states.shape[1] != LOGGED_DIM or log.actions.shape[1] != 4:
            raise ValueError(
                f"a quadrotor log needs 13 state columns (position, quaternion wxyz, velocity, angular velocity) "
                f"and 4 commands, got {log.states.shape[1]} and {log.actions.shape[1]}."
            )
        self.log, self.base = log, base_params
        self.horizon = horizon_steps
        # the rebuilt rpm starts at the first command's speed: skip windows until that guess has decayed
        self.starts = shooting_windows(log.num_steps, horizon_steps, stride_steps, start=round(settle_s / log.dt_s))
        self.setpoints_rpm = base_params.action_to_rpm(log.actions)
        self.scale = log.states[:, SCORED].std(axis=0) + 1e-9
        self._zeros = np.zeros((3, 1))

    def params_with(self, values: dict[str, float]) -> CrazyflieParams:
        return replace(self.base, **values)

    def rollouts(self, params: CrazyflieParams, horizon_steps: int | None = None, starts=None) -> np.ndarray:
        """Predicted logged states (windows, horizon + 1, 13) from each window's first logged state."""
        horizon = self.horizon if horizon_steps is None else horizon_steps
        starts = self.starts if starts is None else starts
        log = self.log
        rpm = rebuild_rpm(self.setpoints_rpm, params.motor_time_constant_s, log.dt_s, self.setpoints_rpm[0])
        dyn = BatchDynamics.nominal(params, len(starts))
        x = np.empty((STATE_DIM, len(starts)))
        x[:LOGGED_DIM] = log.states[starts].T
        x[RPM] = rpm[starts].T
        out = np.empty((len(starts), horizon + 1, LOGGED_DIM))
        out[:, 0] = x[:LOGGED_DIM].T
        for j in range(horizon):
            x = rk4_step(x, self.setpoints_rpm[starts + j].T, dyn, log.dt_s, self._zeros, self._zeros)
            out[:, j + 1] = x[:LOGGED_DIM].T
        return out

    def logged_windows(self, horizon_steps: int | None = None, starts=None) -> np.ndarray:
        horizon = self.horizon if horizon_steps is None else horizon_steps
        starts = self.starts if starts is None else starts
        return self.log.states[starts[:, None] + np.arange(horizon + 1)]

    def residuals(self, values: dict[str, float]) -> np.ndarray:
        predicted = self.rollouts(self.params_with(values))
        return ((predicted[:, 1:, SCORED] - self.logged_windows()[:, 1:, SCORED]) / self.scale).ravel()

    def rmse(self, params: CrazyflieParams, horizon_steps: int) -> dict[str, float]:
        """Prediction RMSE over `horizon_steps` rollouts from logged states: position, velocity, angular velocity."""
        starts = shooting_windows(self.log.num_steps, horizon_steps, max(1, horizon_steps // 2), self.starts[0])
        error = self.rollouts(params, horizon_steps, starts) - self.logged_windows(horizon_steps, starts)
        rms = lambda rows: float(np.sqrt(np.mean(np.sum(error[:, 1:, rows] ** 2, axis=-1))))  # noqa: E731
        return {
            "position_m": rms(POSITION),
            "linear_velocity_m_s": rms(LINEAR_VELOCITY),
            "angular_velocity_rad_s": rms(ANGULAR_VELOCITY),
        }


def fit_quadrotor(log: TrajectoryLog, initial_params: CrazyflieParams, *, bounds_ratio: float = 2.0,
                  horizon_steps: int = 50, stride_steps: int = 5, report_horizon_s: float = 1.0) -> dict:
    """Fits `FITTED` starting from `initial_params`; returns fitted values and RMSE before and after.

    The RMSE is of `report_horizon_s` rollouts from logged states (longer than the fit's windows).
    """
    model = QuadrotorShootingModel(log, initial_params, horizon_steps=horizon_steps, stride_steps=stride_steps)
    parameters = [
        Parameter(name, getattr(initial_params, name), getattr(initial_params, name) / bounds_ratio,
                  getattr(initial_params, name) * bounds_ratio)
        for name in FITTED
    ]
    result: FitResult = fit_parameters(model.residuals, parameters)
    fitted = model.params_with(result.values)
    report_steps = round(report_horizon_s / log.dt_s)
    return {
        "fit": result,
        "params": fitted,
        "rmse_before": model.rmse(initial_params, report_steps),
        "rmse_after": model.rmse(fitted, report_steps),
    }


def fit_quadrotor_with_delay(log: TrajectoryLog, initial_params: CrazyflieParams, max_delay_steps: int = 5,
                             **fit_options) -> dict:
    """``fit_quadrotor`` for each whole-step command delay 0..max_delay_steps; keeps the delay whose fit predicts best.

    A command delay (radio, firmware) the model leaves out gets absorbed into a slower motor and a wrong
    thrust-to-weight ratio; shifting the commands against the states removes it from the log instead.
    Returns the best fit plus ``delay_steps``, ``delay_s`` and every candidate's residual RMS.
    """
    if not 0 <= max_delay_steps < log.num_steps // 2:
        raise ValueError(f"max_delay_steps must be in [0, {log.num_steps // 2}), got {max_delay_steps}.")
    fits = {}
    for delay in range(max_delay_steps + 1):
        shifted = log if delay == 0 else TrajectoryLog(log.states[delay:], log.actions[:log.num_steps - delay], log.dt_s,
                                                       log.state_names, log.action_names)
        fits[delay] = fit_quadrotor(shifted, initial_params, **fit_options)
    best = min(fits, key=lambda delay: fits[delay]["fit"].residual_rms_after)
    return {**fits[best], "delay_steps": best, "delay_s": best * log.dt_s,
            "residual_rms_by_delay_steps": {delay: fit["fit"].residual_rms_after for delay, fit in fits.items()}}
