"""The simulated Franka pick-cube task: physics rates, controller, reward semantics, expert, pixels."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim2real  # noqa: F401  (registers robot_rl/PickCube-v0 and robot_rl/PickCubePixels-v0)
from sim2real.pick_cube import PickCubeEnv, PickCubeExpert
from sim2real.pick_cube.controller import HAND_DOWN_QUAT, OperationalSpaceController
from sim2real.pick_cube.ik import ArmIK
from sim2real.pick_cube.scene import ARM_JOINTS, GRIPPER_OPEN_M, build_model, fr3_assets_dir


@pytest.fixture(scope="module")
def env():
    env = PickCubeEnv()
    yield env
    env.close()


@pytest.fixture(scope="module")
def pixel_env():
    env = PickCubeEnv(obs_mode="pixels", render_mode="rgb_array")
    yield env
    env.close()


def run_expert_episode(env, expert, seed):
    obs, _ = env.reset(seed=seed)
    steps = []
    while True:
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        steps.append((reward, terminated, truncated, info["is_success"]))
        if terminated or truncated:
            return steps


# Unbounded observation bounds are deliberate (a knocked cube can go anywhere); gymnasium warns about them.
@pytest.mark.filterwarnings("ignore:.*Box observation space (minimum|maximum) value")
def test_check_env_passes_in_state_mode(env):
    check_env(env, skip_render_check=True)


def test_registered_ids_make_both_modes_without_importing_mujoco_at_registration():
    code = "import sys, sim2real; assert 'mujoco' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    state_env = gym.make("robot_rl/PickCube-v0")
    assert state_env.unwrapped.obs_mode == "state"
    assert gym.spec("robot_rl/PickCubePixels-v0").kwargs["obs_mode"] == "pixels"
    state_env.close()


def test_physics_and_control_rates(env):
    assert env.model.opt.timestep <= 0.002
    assert env.control_period_s == pytest.approx(0.1)
    assert env.n_substeps * env.model.opt.timestep == pytest.approx(0.1)


def test_layouts_describe_the_spaces(env):
    assert env.obs_layout == [
        ("ee_pos", 3), ("ee_vel", 3), ("gripper_width", 1), ("cube_pos", 3), ("cube_rel_ee", 3)
    ]
    assert sum(n for _, n in env.obs_layout) == env.observation_space.shape[0] == 13
    assert env.action_layout == [("ee_delta_xyz", 3), ("gripper", 1)]
    assert env.action_space.shape == (4,) and env.action_space.dtype == np.float32
    obs, _ = env.reset(seed=3)
    np.testing.assert_allclose(obs[0:3], env.ee_pos_m, atol=1e-6)
    np.testing.assert_allclose(obs[7:10], env.cube_pos_m, atol=1e-6)
    np.testing.assert_allclose(obs[10:13], env.cube_pos_m - env.ee_pos_m, atol=1e-6)
    assert obs[6] == pytest.approx(2 * GRIPPER_OPEN_M)


def test_controller_tracks_a_target_with_the_hand_pointing_down():
    model = build_model()
    data = mujoco.MjData(model)
    start, goal = np.array([0.5, 0.0, 0.2]), np.array([0.58, -0.08, 0.08])
    posture = ArmIK(model, "ee", ARM_JOINTS).solve(start, HAND_DOWN_QUAT, (0, 0, 0, -1.57, 0, 1.57, 0.785))
    data.qpos[:7] = posture
    mujoco.mj_forward(model, data)
    controller = OperationalSpaceController(model, data, "ee", ARM_JOINTS, posture)
    controller.target_pos_m[:] = goal
    site = model.site("ee").id
    errors_m = []
    for _ in range(250):  # 0.5 s at 500 Hz
        controller.apply()
        mujoco.mj_step2(model, data)
        mujoco.mj_step1(model, data)
        errors_m.append(np.linalg.norm(data.site_xpos[site] - goal))
    # Measured for this 16 cm move: 3.4 mm after 0.2 s, 0.6 mm after 0.5 s; hand z tilt 0.004 rad.
    assert errors_m[99] < 0.01
    assert errors_m[-1] < 0.002
    hand_z = data.site_xmat[site].reshape(3, 3)[:, 2]
    assert np.arccos(-hand_z[2]) < 0.02


def test_expert_lifts_the_cube_in_most_seeded_episodes(env):
    expert = PickCubeExpert(env)
    episodes = [run_expert_episode(env, expert, seed) for seed in range(30)]
    success_rate = np.mean([ep[-1][3] for ep in episodes])
    # Measured: 300/300 episodes (seeds 0-299), mean 12.5 steps, max 14; 300/300 with action noise 0.3.
    assert success_rate >= 0.9
    assert max(len(ep) for ep in episodes if ep[-1][3]) < env.max_episode_steps


def test_success_rewards_once_and_terminates(env):
    steps = run_expert_episode(env, PickCubeExpert(env), seed=11)
    rewards, terminated, truncated, success = (np.array(x) for x in zip(*steps))
    assert rewards[-1] == 1.0 and terminated[-1] and not truncated[-1] and success[-1]
    assert not rewards[:-1].any() and not terminated[:-1].any() and not success[:-1].any()
    assert env.cube_pos_m[2] - env.cube_rest_z_m >= 0.05


def test_episode_without_success_truncates_exactly_at_max_steps():
    env = PickCubeEnv(max_episode_steps=12)
    env.reset(seed=0)
    outcomes = [env.step(np.array([0.0, 0.0, 0.5, -1.0], np.float32))[1:4] for _ in range(12)]
    assert [truncated for _, _, truncated in outcomes] == [False] * 11 + [True]
    assert not any(terminated for _, terminated, _ in outcomes)
    assert all(reward == 0.0 for reward, _, _ in outcomes)


def test_a_cube_that_is_high_but_not_held_is_no_success(env):
    env.reset(seed=2)
    # Put the cube 30 cm up, far from the hand: it is "lifted" but not held while it falls.
    env.data.qpos[env.model.jnt_qposadr[env.model.joint("cube_joint").id] + 2] = 0.3
    mujoco.mj_forward(env.model, env.data)
    _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
    assert env.cube_pos_m[2] - env.cube_rest_z_m > 0.2
    assert reward == 0.0 and not terminated and not info["is_success"]


def test_reset_with_a_seed_is_deterministic():
    first, second = PickCubeEnv(), PickCubeEnv()
    actions = np.random.default_rng(0).uniform(-1, 1, (15, 4)).astype(np.float32)
    obs_a, _ = first.reset(seed=123)
    obs_b, _ = second.reset(seed=123)
    np.testing.assert_array_equal(obs_a, obs_b)
    for action in actions:
        np.testing.assert_array_equal(first.step(action)[0], second.step(action)[0])
    other, _ = second.reset(seed=124)
    assert np.linalg.norm(other[7:9] - obs_a[7:9]) > 1e-3  # cube xy is randomized per seed


def test_cube_spawn_range_and_yaw_are_randomized(env):
    xy, yaws = [], []
    for seed in range(40):
        env.reset(seed=seed)
        xy.append(env.cube_pos_m[:2])
        q = env.data.xquat[env.model.body("cube").id]
        yaws.append(2 * np.arctan2(q[3], q[0]))
    offsets = np.abs(np.array(xy) - (0.5, 0.0))
    assert offsets.max() <= env.cube_xy_range_m + 1e-9
    assert offsets.max() > 0.5 * env.cube_xy_range_m
    assert np.ptp(yaws) > 1.0


def test_targets_are_clipped_to_the_workspace_box(env):
    env.reset(seed=5)
    for _ in range(15):
        env.step(np.array([1.0, 1.0, 1.0, -1.0], np.float32))
    np.testing.assert_allclose(env.ee_target_m, env.workspace_high_m)
    assert np.all(env.ee_pos_m <= env.workspace_high_m + 0.005)
    for _ in range(25):
        env.step(np.array([-1.0, -1.0, -1.0, -1.0], np.float32))
    np.testing.assert_allclose(env.ee_target_m, env.workspace_low_m)
    assert np.all(env.ee_pos_m >= env.workspace_low_m - 0.005)


def test_invalid_actions_and_options_are_rejected_with_a_clear_message(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="4 finite numbers"):
        env.step(np.array([np.nan, 0, 0, 0], np.float32))
    with pytest.raises(ValueError, match="obs_mode must be"):
        PickCubeEnv(obs_mode="rgb")


def test_missing_franky_sim_names_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "franky_sim", None)
    with pytest.raises(ModuleNotFoundError, match="pip install franky-sim"):
        fr3_assets_dir()


def test_pixels_mode_returns_camera_images_that_follow_the_arm(pixel_env):
    obs, _ = pixel_env.reset(seed=1)
    assert set(obs) == {"state", "front", "wrist"}
    assert obs["state"].shape == (7,) and obs["state"].dtype == np.float32
    for camera in ("front", "wrist"):
        assert obs[camera].shape == (128, 128, 3) and obs[camera].dtype == np.uint8
    assert pixel_env.observation_space.contains(obs)
    assert pixel_env.obs_layout == [("ee_pos", 3), ("ee_vel", 3), ("gripper_width", 1)]
    moved = obs
    for _ in range(3):
        moved, *_ = pixel_env.step(np.array([0.0, 1.0, -1.0, -1.0], np.float32))
    for camera in ("front", "wrist"):
        changed = np.abs(moved[camera].astype(int) - obs[camera].astype(int)).max(axis=2) > 10
        assert changed.mean() > 0.01, camera
    frame = pixel_env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8


def test_pixels_mode_without_a_gl_backend_says_which_package_to_install():
    code = "from sim2real.pick_cube import PickCubeEnv; PickCubeEnv(obs_mode='pixels')"
    no_display = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run(
        [sys.executable, "-c", code], env={**no_display, "MUJOCO_GL": "glfw"}, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "libegl1" in result.stderr and "MUJOCO_GL=egl" in result.stderr and "libosmesa6" in result.stderr
