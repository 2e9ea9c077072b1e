"""The RC car task through the session machinery: launch file, gymnasium id, scripted expert demo."""

from __future__ import annotations

import numpy as np

from robot_rl.config import load_session
from robot_rl.envs import make_env, make_expert
from robot_rl.spaces import flatten_obs, obs_spec_from_space


def test_launch_file_builds_the_pixel_env_and_its_expert_drives_a_lap():
    config = load_session("launch/sim_rc_car.yaml")
    assert config.learner.num_critics == 10 and config.learner.utd == 8
    env = make_env(config, max_episode_steps=400)
    spec = obs_spec_from_space(env.observation_space)
    assert spec.image_shapes == {"camera": (64, 64, 3)} and spec.state_dim == 13
    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    for _ in range(400):
        flat = flatten_obs(spec, obs)
        assert flat["state"].dtype == np.float32 and np.all(np.isfinite(flat["state"]))
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        assert not terminated
    assert truncated and info["laps"] == 1 and info["is_success"]  # the slow demo lap takes ≈32 s


def test_state_only_id():
    config = load_session("launch/sim_rc_car.yaml").model_copy(update={"env": "robot_rl/RCCarRaceState-v0"})
    env = make_env(config)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (26,) and obs.dtype == np.float32
