"""RC car simulator and FastRLAP task: bicycle model, checkpoints, crash/stuck recovery, rate limit."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sim2real.rc_car.camera import SKY_RGB
from sim2real.rc_car.checkpoints import extract_checkpoints
from sim2real.rc_car.dynamics import CarFleet
from sim2real.rc_car.env import RCCarRaceEnv, VecRCCar
from sim2real.rc_car.expert import RCCarExpert
from sim2real.rc_car.params import CarParams
from sim2real.rc_car.recovery import CrashStuckDetector, RecoveryConfig, recovery_actions
from sim2real.rc_car.track import ASPHALT_RGB, TRACKS, get_track


def test_low_speed_follows_the_kinematic_bicycle_circle():
    track, car = get_track("loop"), CarParams()
    fleet = CarFleet(track, 1, car)
    x, y, yaw = track.pose_at(0.5, lateral_m=-0.4)  # right side of the start straight, room to turn left
    fleet.place(0, x, y, yaw)
    speed, steer = 0.8, 0.25  # well below the dynamic blend (1 m/s): no tyre slip
    path = []
    for _ in range(25):
        fleet.step(np.array([[speed / car.max_speed_m_s, steer]]))
        path.append((fleet.x_m[0], fleet.y_m[0]))
    assert not fleet.contact.any()
    delta = steer * car.max_steer_rad
    assert fleet.vx_m_s[0] == pytest.approx(speed, rel=0.02)
    assert fleet.yaw_rate_rad_s[0] == pytest.approx(fleet.vx_m_s[0] * np.tan(delta) / car.wheelbase_m, rel=1e-6)
    # centre of gravity on a circle of radius sqrt(R_rear² + l_r²), R_rear = L / tan(δ)
    pts = np.array(path[10:])  # steering and speed have settled (lags ≤ 0.15 s)
    a = np.c_[2 * pts, np.ones(len(pts))]
    cx, cy, c = np.linalg.lstsq(a, (pts ** 2).sum(axis=1), rcond=None)[0]
    radius = np.sqrt(c + cx ** 2 + cy ** 2)
    expected = np.hypot(car.wheelbase_m / np.tan(delta), car.rear_axle_m)
    assert radius == pytest.approx(expected, rel=0.01)


def test_high_speed_cornering_slips_and_understeers():
    track, car = get_track("loop"), CarParams()
    fleet = CarFleet(track, 1, car)
    fleet.place(0, *track.pose_at(0.0, lateral_m=-0.45), speed_m_s=4.0)
    fleet.step(np.array([[0.8, 1.0]]))
    kinematic_rate = fleet.vx_m_s[0] * np.tan(fleet.steer_rad[0]) / car.wheelbase_m
    assert abs(fleet.vy_m_s[0]) > 0.05  # the dynamic model slides sideways
    assert fleet.yaw_rate_rad_s[0] < 0.8 * kinematic_rate  # and turns less than the geometry says
    assert abs(fleet.yaw_rate_rad_s[0]) * fleet.vx_m_s[0] < 1.2 * car.friction * 9.81  # friction-limited


def test_extract_checkpoints_spacing_and_lap_end():
    straight = np.stack([np.linspace(0, 10, 101), np.zeros(101)], axis=1)
    cps = extract_checkpoints(straight, spacing_m=2.0)
    np.testing.assert_allclose(cps, [[2, 0], [4, 0], [6, 0], [8, 0], [10, 0]], atol=1e-9)
    with pytest.raises(ValueError, match="drive a whole lap"):
        extract_checkpoints(straight[:20], spacing_m=2.0)


@pytest.mark.parametrize("name", sorted(TRACKS))
def test_checkpoints_from_the_slow_scripted_lap_lie_on_the_track(name):
    env = RCCarRaceEnv(track=name, obs_mode="state")
    track, cps = env.track, env.checkpoints_m
    _, s, lateral = track.project(cps)
    assert np.all(np.abs(lateral) < track.half_width_m)
    gaps = np.diff(np.r_[0.0, np.sort(s % track.length_m)])
    assert len(cps) == pytest.approx(track.length_m / 2.0, abs=2) and gaps.max() < 2.5
    assert np.linalg.norm(cps[-1] - track.centre_m[0]) < env.checkpoint_radius_m  # the last one closes the lap


def test_crash_and_stuck_detection():
    detector = CrashStuckDetector(RecoveryConfig(stuck_window_steps=5, stuck_progress_m=0.3, crash_accel_m_s2=30.0))
    assert detector.update(0.1, 5.0, False) is None
    assert detector.update(0.1, 50.0, False) == "crash"  # acceleration spike
    assert detector.update(0.1, 0.0, True) == "crash"  # edge contact
    detector.reset()
    for _ in range(4):
        assert detector.update(0.05, 1.0, False) is None
    assert detector.update(0.05, 1.0, False) == "stuck"  # 0.25 m in 5 steps
    detector.reset()
    assert all(detector.update(0.2, 1.0, False) is None for _ in range(10))  # moving on: never stuck


def test_recovery_manoeuvre_reverses_with_random_steer():
    a, b = recovery_actions(np.random.default_rng(1)), recovery_actions(np.random.default_rng(2))
    assert a.shape == (10, 2) and np.all(a[:, 0] < 0) and np.all(a[:, 1] == a[0, 1]) and a[0, 1] != b[0, 1]


def test_env_crash_triggers_recovery_inside_step():
    env = RCCarRaceEnv(obs_mode="state", crash_penalty=1.0)
    env.reset(seed=0)
    info, rewards = {}, []
    for _ in range(40):  # full speed, full left: into the inner wall of the first corner
        _, reward, terminated, truncated, info = env.step(np.array([1.0, 1.0]))
        rewards.append(reward)
        if info["recovery"]:
            break
    assert info["recovery"] == "crash" and info["recovery_steps"] == 10 and info["recoveries"] == 1
    assert rewards[-1] < -0.5 and not terminated and not truncated
    assert info["sim_time_s"] == pytest.approx(0.1 * (len(rewards) + 10))  # the manoeuvre's 1 s is simulated
    np.testing.assert_array_equal(env.prev_action, [0.0, 0.0])  # the policy resumes from a stop
    assert not env.fleet.contact[0]  # backed off the wall


def test_env_stuck_triggers_recovery_and_the_car_backs_up():
    env = RCCarRaceEnv(obs_mode="state", stuck_window_steps=20)
    env.reset(seed=3)
    for step in range(20):
        _, _, _, _, info = env.step(np.zeros(2))
    assert step == 19 and info["recovery"] == "stuck" and info["recovery_steps"] == 10
    assert env.fleet.track_s_m[0] > env.track.length_m - 3.0  # reversed behind the start line


def test_action_rate_limit():
    env = RCCarRaceEnv(obs_mode="state")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([1.0, -1.0]))
    np.testing.assert_allclose(info["applied_action"], [0.2, -0.2])
    _, _, _, _, info = env.step(np.array([1.0, 0.5]))
    np.testing.assert_allclose(info["applied_action"], [0.4, 0.0])
    _, _, _, _, info = env.step(np.array([0.35, 0.1]))
    np.testing.assert_allclose(info["applied_action"], [0.35, 0.1])


def test_experts_complete_laps_and_fast_is_faster():
    laps = {}
    for mode in ("slow", "fast"):
        env = RCCarRaceEnv(obs_mode="state", max_episode_steps=400)
        expert = RCCarExpert(env, mode)
        obs, _ = env.reset(seed=0)
        for _ in range(400):
            obs, _, _, truncated, info = env.step(expert.act(obs))
            assert not info["recovery"]
        laps[mode] = info["best_lap_time_s"]
        assert info["is_success"]
    # measured: slow ≈ 32 s, fast ≈ 8.3 s on "loop" (39 m)
    assert laps["slow"] > 25 and laps["fast"] < 10


def test_pixel_observation_and_camera_speed():
    env = RCCarRaceEnv(obs_mode="pixels", image_size=64)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    image = obs["camera"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[0, 32], SKY_RGB)
    np.testing.assert_array_equal(image[-1, 32], ASPHALT_RGB)  # straight ahead, just below the car: the track
    start = time.perf_counter()
    for _ in range(200):
        env.render()
    assert (time.perf_counter() - start) / 200 < 1e-3  # measured ≈0.1 ms per 64×64 frame


def test_vectorized_fleet_matches_single_car():
    vec = VecRCCar(8, seed=0)
    frames = vec.reset()
    assert frames.shape == (8, 64, 64, 3)
    single = CarFleet(vec.track, 1, vec.fleet.p)
    single.place(0, vec.fleet.x_m[3], vec.fleet.y_m[3], vec.fleet.yaw_rad[3])
    actions = np.tile([0.3, 0.2], (8, 1))
    for _ in range(5):
        vec.step(actions, render=False)
        single.step(actions[:1])
    assert vec.fleet.x_m[3] == pytest.approx(single.x_m[0]) and vec.fleet.yaw_rad[3] == pytest.approx(single.yaw_rad[0])
