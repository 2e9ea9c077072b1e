"""Domain randomization on the pick-cube MuJoCo model: ranges, seeding, restoring, and its effect."""

import gymnasium as gym
import numpy as np
import pytest

import sim2real  # noqa: F401  (registers the env ids)
from sim2real.randomization import DynamicsRandomization, SensorNoise, VisualRandomization


@pytest.fixture(scope="module")
def state_env():
    env = gym.make("robot_rl/PickCube-v0")
    yield env
    env.close()


@pytest.fixture(scope="module")
def pixels_env():
    env = gym.make("robot_rl/PickCubePixels-v0", image_size=48, cameras=("front",))
    yield env
    env.close()


def test_dynamics_values_stay_in_range_change_per_episode_and_restore(state_env):
    env = DynamicsRandomization(state_env, cube_mass_scale=(0.5, 1.5), friction_scale=(0.7, 1.3),
                                joint_damping_scale=(0.5, 2.0), motor_gain_scale=(0.9, 1.1), seed=0)
    model = env.unwrapped.model
    cube = model.body("cube").id
    nominal_mass = model.body_mass[cube]
    nominal = {k: env.nominal(k) for k in ("cube_mass_kg", "friction", "joint_damping", "motor_gain")}
    masses = []
    for episode in range(20):
        env.reset(seed=episode)
        masses.append(model.body_mass[cube])
        for key, (low, high) in env.ranges.items():
            ratio = env.current[key] / nominal[key]
            assert np.all(ratio >= low - 1e-12) and np.all(ratio <= high + 1e-12), key
            np.testing.assert_allclose(ratio, ratio.flat[0])  # one factor per quantity per episode
        ratio_inertia = model.body_inertia[cube] / env.nominal("cube_inertia")[0]
        np.testing.assert_allclose(ratio_inertia, masses[-1] / nominal_mass)
    assert np.std(masses) / nominal_mass > 0.15  # uniform on [0.5, 1.5] has std 0.29
    env.reset(seed=3)
    mass_seed3 = model.body_mass[cube]
    env.reset(seed=4)
    env.reset(seed=3)
    assert model.body_mass[cube] == mass_seed3  # seeded per episode
    env.enabled = False
    assert model.body_mass[cube] == nominal_mass
    np.testing.assert_array_equal(model.dof_damping[env._fields["joint_damping"].rows], nominal["joint_damping"])
    env.reset(seed=5)
    assert model.body_mass[cube] == nominal_mass  # disabled: resets keep the nominal model


def test_heavier_cube_is_measurably_heavier_in_the_physics(state_env):
    """A cube dropped onto the table pushes harder on it when its mass is scaled up."""
    import mujoco

    env = DynamicsRandomization(state_env, cube_mass_scale=(3.0, 3.0), friction_scale=(1, 1),
                                joint_damping_scale=(1, 1), motor_gain_scale=(1, 1), seed=0)

    def resting_contact_force_n():
        env.reset(seed=0)
        base = env.unwrapped
        for _ in range(3):
            base.step(np.zeros(4))
        force = np.zeros(6)
        cube_geom = base.model.geom("cube").id
        total = 0.0
        for i in range(base.data.ncon):
            if cube_geom in (base.data.contact[i].geom1, base.data.contact[i].geom2):
                mujoco.mj_contactForce(base.model, base.data, i, force)
                total += force[0]
        return total

    heavy = resting_contact_force_n()
    env.enabled = False
    light = resting_contact_force_n()
    assert heavy / light == pytest.approx(3.0, rel=0.05)


def test_visual_randomization_changes_images_and_restores_them(pixels_env):
    env = VisualRandomization(pixels_env, seed=0)
    model = env.unwrapped.model
    env.enabled = False
    nominal_image = env.reset(seed=0)[0]["front"]
    env.enabled = True
    images = [env.reset(seed=0)[0]["front"], env.reset(seed=1)[0]["front"]]
    for image in images:
        assert np.abs(image.astype(int) - nominal_image).mean() > 2.0  # a few grey levels on average
    assert np.abs(images[0].astype(int) - images[1]).mean() > 2.0
    np.testing.assert_allclose(np.linalg.norm(model.cam_quat, axis=1), 1.0)
    angle = 2 * np.arccos(np.clip(np.abs((model.cam_quat * env.nominal("cam_quat")).sum(1)), 0, 1))
    assert np.all(angle <= env.camera_rotation_jitter_rad + 1e-9) and np.any(angle > 0)
    assert np.all(np.abs(model.cam_pos - env.nominal("cam_pos")) <= env.camera_position_jitter_m + 1e-12)
    env.enabled = False
    np.testing.assert_array_equal(env.reset(seed=0)[0]["front"], nominal_image)


def test_sensor_noise_is_seeded_gaussian_on_the_state_only(pixels_env, state_env):
    env = SensorNoise(state_env, std=0.01, seed=0)
    clean = state_env.reset(seed=2)[0]
    noisy = env.reset(seed=2)[0]
    assert np.abs(noisy - clean).max() > 0
    samples = []
    for _ in range(50):
        obs, *_ = env.step(np.zeros(4, np.float32))
        samples.append(obs - env.unwrapped._observation())
    assert np.std(samples) == pytest.approx(0.01, rel=0.15)  # 650 draws: std error ~3%
    assert np.array_equal(env.reset(seed=7)[0], env.reset(seed=7)[0])
    dict_env = SensorNoise(pixels_env, std=0.02, seed=0)
    obs, _ = dict_env.reset(seed=1)
    clean_obs, _ = pixels_env.reset(seed=1)
    assert not np.array_equal(obs["state"], clean_obs["state"])
    np.testing.assert_array_equal(obs["front"], clean_obs["front"])
    with pytest.raises(ValueError, match="std must be >= 0"):
        SensorNoise(state_env, std=-1.0)


def test_actuator_lag_slows_the_arm_and_its_time_constant_is_drawn():
    moved = {}
    for lag_s in (0.0, 0.05):
        env = gym.make("robot_rl/PickCube-v0", actuator_lag_s=lag_s)
        env.reset(seed=0)
        base = env.unwrapped
        assert base.model.na == (7 if lag_s else 0)  # one filter state per arm motor
        before = base.ee_pos_m
        env.step(np.array([1.0, 0.0, 0.0, -1.0], np.float32))
        moved[lag_s] = base.ee_pos_m[0] - before[0]
        if lag_s:  # the applied torque trails the commanded one
            assert np.abs(base.data.act - base.data.ctrl[:7]).max() > 1e-3
        env.close()
    # measured 24.2 mm without lag, 29.6 mm with 50 ms: the controller overshoots late torques
    assert abs(moved[0.05] - moved[0.0]) > 2e-3

    env = DynamicsRandomization(gym.make("robot_rl/PickCube-v0", actuator_lag_s=0.05), actuator_lag_scale=(0.5, 2.0),
                                seed=0)
    lags = []
    for episode in range(5):
        env.reset(seed=episode)
        lags.append(env.current["actuator_lag"][0])
        assert 0.025 - 1e-12 <= lags[-1] <= 0.1 + 1e-12
    assert len(set(lags)) == 5
    env.close()
    with pytest.raises(ValueError, match="actuator_lag_s > 0"):
        DynamicsRandomization(state_env_without_lag := gym.make("robot_rl/PickCube-v0"), actuator_lag_scale=(0.5, 2.0))
    state_env_without_lag.close()
