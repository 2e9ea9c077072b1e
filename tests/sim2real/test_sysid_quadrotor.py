"""System identification recovers perturbed quadrotor parameters from 20 s of logged flight."""

from dataclasses import replace

import numpy as np
import pytest

from sim2real.quadrotor.params import CRAZYFLIE
from sim2real.sysid import Parameter, TrajectoryLog, fit_parameters, shooting_windows
from sim2real.sysid.quadrotor import FITTED, fit_quadrotor, fit_quadrotor_with_delay, rebuild_rpm
from sim2real.sysid.quadrotor_flight import record_flight

# motion capture ~1 mm / 1e-3, estimator velocity ~1 cm/s, gyro ~0.01 rad/s (4x a BMI088 spec) per 10 ms sample
MEASUREMENT_NOISE = np.array([1e-3] * 3 + [1e-3] * 4 + [1e-2] * 3 + [1e-2] * 3)


@pytest.fixture(scope="module")
def flight_log(tmp_path_factory):
    """20 s of logged flight of a "real" vehicle, saved and read back as the run store would."""
    real = replace(CRAZYFLIE, mass_kg=0.029, motor_time_constant_s=0.12)
    log = record_flight(real, 20.0, seed=1, measurement_noise=MEASUREMENT_NOISE)
    path = tmp_path_factory.mktemp("sysid") / "flight.npz"
    log.save_npz(path)
    return real, TrajectoryLog.load_npz(path)


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_recovers_thrust_coefficient_motor_lag_and_mass_within_3_percent(flight_log, seed):
    real, log = flight_log
    assert log.duration_s == pytest.approx(20.0)
    rng = np.random.default_rng(seed)
    factors = rng.uniform(0.10, 0.30, 3) * rng.choice([-1.0, 1.0], 3)  # each off by 10-30%
    start = replace(real, **{n: getattr(real, n) * (1 + f) for n, f in zip(FITTED, factors)})
    out = fit_quadrotor(log, start)
    for name in FITTED:
        error = getattr(out["params"], name) / getattr(real, name) - 1.0
        # the requirement; measured |error| <= 0.64% over 4 bench seeds with this noise
        assert abs(error) < 0.03, (name, error)
    before, after = out["rmse_before"], out["rmse_after"]
    # measured 1 s prediction RMSE (bench/sysid.py --noise, 4 seeds): position 0.30-1.13 m before,
    # 0.015 m after (ratio <= 0.05); velocity 0.78-2.9 m/s before, 0.045 m/s after
    assert after["position_m"] < 0.2 * before["position_m"]
    assert after["linear_velocity_m_s"] < 0.2 * before["linear_velocity_m_s"]
    assert out["fit"].residual_rms_after < out["fit"].residual_rms_before


def test_an_unmodelled_command_delay_in_the_log_lengthens_the_fitted_motor_lag():
    # the sim-to-real bench logs its 30 ms-delayed "real" vehicle this way; the fit has no delay term, so the
    # delay shows up as a slower motor (measured: 1.16x the true lag at 3 steps, 0.99x at 0 steps, seed 0)
    real = replace(CRAZYFLIE, mass_kg=0.0324, thrust_coefficient_n_per_rpm2=2.686e-10, motor_time_constant_s=0.195)
    delayed = record_flight(real, 20.0, seed=0, action_delay_steps=3)
    undelayed = record_flight(real, 20.0, seed=0)
    assert not np.allclose(delayed.states[:300], undelayed.states[:300])  # the same controller, now behind a delay
    lag = {name: fit_quadrotor(log, CRAZYFLIE)["params"].motor_time_constant_s / real.motor_time_constant_s
           for name, log in (("delayed", delayed), ("undelayed", undelayed))}
    assert abs(lag["undelayed"] - 1.0) < 0.03 and lag["delayed"] > 1.08
    with pytest.raises(ValueError, match="action_delay_steps"):
        record_flight(real, 1.0, action_delay_steps=-1)


def test_delay_search_recovers_the_command_delay_and_the_parameters():
    real = replace(CRAZYFLIE, mass_kg=0.0324, thrust_coefficient_n_per_rpm2=2.686e-10, motor_time_constant_s=0.195)
    log = record_flight(real, 20.0, seed=1, action_delay_steps=3)
    out = fit_quadrotor_with_delay(log, CRAZYFLIE, max_delay_steps=4)
    assert out["delay_steps"] == 3 and out["delay_s"] == pytest.approx(0.03)
    residuals = out["residual_rms_by_delay_steps"]
    assert residuals[3] < 0.5 * min(residuals[k] for k in (0, 1, 2, 4))  # measured: 0.0002 vs 0.011-0.031
    fitted = out["params"]
    assert fitted.motor_time_constant_s == pytest.approx(real.motor_time_constant_s, rel=0.03)
    thrust_to_weight = fitted.thrust_coefficient_n_per_rpm2 / fitted.mass_kg
    assert thrust_to_weight == pytest.approx(real.thrust_coefficient_n_per_rpm2 / real.mass_kg, rel=0.03)
    with pytest.raises(ValueError, match="max_delay_steps"):
        fit_quadrotor_with_delay(log, CRAZYFLIE, max_delay_steps=-1)


def test_rebuilt_rotor_speeds_match_the_simulator():
    """The fit rebuilds unlogged rotor speeds from commands; they must be what the simulator had."""
    from sim2real.quadrotor.dynamics import RPM, BatchDynamics, identity_state, rk4_step

    rng = np.random.default_rng(0)
    setpoints = rng.uniform(8000, 20000, (50, 4))
    dyn = BatchDynamics.nominal(CRAZYFLIE, 1)
    x = identity_state(1)
    x[RPM] = setpoints[0][:, None]
    zeros = np.zeros((3, 1))
    simulated = [x[RPM, 0].copy()]
    for s in setpoints:
        x = rk4_step(x, s[:, None], dyn, 0.01, zeros, zeros)
        simulated.append(x[RPM, 0].copy())
    rebuilt = rebuild_rpm(setpoints, CRAZYFLIE.motor_time_constant_s, 0.01, setpoints[0])
    np.testing.assert_allclose(rebuilt, np.array(simulated), rtol=1e-12)


def test_generic_fitter_on_a_first_order_lag():
    """The generic fitter with short shooting windows finds a lag's gain and time constant."""
    dt_s, gain, tau_s = 0.01, 2.0, 0.3
    u = np.repeat(np.random.default_rng(0).uniform(-1, 1, 40), 25)
    y = np.zeros(len(u) + 1)
    for t, ut in enumerate(u):
        y[t + 1] = y[t] + dt_s * (gain * ut - y[t]) / tau_s
    starts = shooting_windows(len(u), horizon=10, stride=5)

    def residuals(values):
        errors = []
        for k in starts:
            yk = y[k]
            for j in range(10):
                yk = yk + dt_s * (values["gain"] * u[k + j] - yk) / values["tau_s"]
                errors.append(yk - y[k + j + 1])
        return np.array(errors)

    result = fit_parameters(residuals, [Parameter("gain", 1.0, 0.1, 10.0), Parameter("tau_s", 0.1, 0.01, 1.0)])
    assert result.values["gain"] == pytest.approx(gain, rel=1e-6)
    assert result.values["tau_s"] == pytest.approx(tau_s, rel=1e-6)
    assert result.cost_after < 1e-12 < result.cost_before


def test_log_errors_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="log the state after the last command"):
        TrajectoryLog(np.zeros((10, 13)), np.zeros((10, 4)), 0.01)
    with pytest.raises(FileNotFoundError, match="record one first"):
        TrajectoryLog.load_npz(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="resample it to a fixed rate"):
        TrajectoryLog.from_timestamped([0.0, 0.01, 0.03], np.zeros((3, 2)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="13 state columns"):
        fit_quadrotor(TrajectoryLog(np.zeros((201, 12)), np.zeros((200, 4)), 0.01), CRAZYFLIE)


def test_fit_from_a_ros2_bag(tmp_path):
    """The same flight written as a ROS 2 bag (Odometry + Float32MultiArray) and read back with rosbags."""
    pytest.importorskip("rosbags")
    from sim2real.sysid.ros2_bag import read_quadrotor_bag, write_quadrotor_bag

    real = replace(CRAZYFLIE, mass_kg=0.029, motor_time_constant_s=0.12)
    log = record_flight(real, 10.0, seed=3)
    write_quadrotor_bag(log, tmp_path / "flight")
    read = read_quadrotor_bag(tmp_path / "flight")
    assert read.dt_s == pytest.approx(log.dt_s)
    np.testing.assert_allclose(read.states, log.states, atol=1e-9)
    np.testing.assert_allclose(read.actions, log.actions, atol=1e-6)  # float32 on the wire
    start = replace(real, thrust_coefficient_n_per_rpm2=3.8e-10, motor_time_constant_s=0.1, mass_kg=0.024)
    fitted = fit_quadrotor(read, start)["params"]
    for name in FITTED:
        assert getattr(fitted, name) == pytest.approx(getattr(real, name), rel=0.03)
    with pytest.raises(ValueError, match="pass the right names"):
        read_quadrotor_bag(tmp_path / "flight", odometry_topic="/vicon")
