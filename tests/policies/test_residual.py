"""Residual RL: starts exactly at the base, stays within alpha of it, ramps alpha, exports base + residual as one graph."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.bc import BCSettings, train_bc
from policies.export.onnx_export import OnnxPolicy, export_onnx, read_spec
from policies.export.spec import build_export_spec
from policies.residual import BASE_ACTION_KEY, ResidualActor, export_residual_session
from robot_rl.acting import ActingPolicy
from robot_rl.config import ConfigError, load_session, session_from_dict
from robot_rl.envs import action_bounds, control_hz, make_env, make_expert, normalize_action
from robot_rl.episodes import episode_paths, read_episode
from robot_rl.replay import ReplayBuffer, sample_mixed
from robot_rl.sac import SACAgent, batch_to_torch
from robot_rl.session import record_expert_demos
from robot_rl.spaces import flatten_obs, obs_spec_from_space

torch.set_num_threads(1)
PICK_CUBE = "robot_rl/PickCube-v0"


def residual_session(base="expert", alpha=0.1, ramp_steps=0, **learner):
    return session_from_dict({"name": "residual_test", "env": PICK_CUBE, "residual": {"base": base, "alpha": alpha,
                              "ramp_steps": ramp_steps},
                              "learner": {"num_critics": 2, "hidden_dims": [64, 64], "batch_size": 32, **learner}})


def rollout_states(env, spec, steps=60, seed=0) -> np.ndarray:
    """Observations the wrapped env really produces, driven by random actions."""
    env.action_space.seed(seed)
    raw, _ = env.reset(seed=seed)
    states = []
    for _ in range(steps):
        states.append(flatten_obs(spec, raw)["state"])
        raw, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            raw, _ = env.reset()
    return np.stack(states)


@pytest.fixture(scope="module")
def wrapped():
    config = residual_session()
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    yield config, env, spec
    env.close()


def test_wrapper_appends_the_normalized_base_action_and_passes_actions_through(wrapped):
    config, env, spec = wrapped
    plain = make_env(config.model_copy(update={"residual": None}))
    assert spec.state_dim == plain.observation_space.shape[0] + 4
    low, high = action_bounds(plain)
    expert = make_expert(plain)
    raw_plain, _ = plain.reset(seed=3)
    raw, _ = env.reset(seed=3)
    for _ in range(15):
        np.testing.assert_array_equal(raw[:-4], raw_plain)
        np.testing.assert_allclose(raw[-4:], normalize_action(expert.act(raw_plain), low, high), atol=1e-6)
        action = np.array([0.3, -0.2, 0.5, 1.0], np.float32)  # the same action reaches the env unchanged
        raw, *_ = env.step(action)
        raw_plain, *_ = plain.step(action)
    plain.close()


def test_zero_init_residual_policy_equals_the_base_at_step_0(wrapped):
    config, env, spec = wrapped
    states = torch.from_numpy(rollout_states(env, spec))
    base = states[:, -4:]
    # ramp 0: alpha_t = alpha from the start; only the zero-initialized mean layer keeps the action at the base
    agent = SACAgent(spec, 4, config.learner, seed=1)
    assert isinstance(agent.actor, ResidualActor) and float(agent.actor.alpha_now) == pytest.approx(0.1)
    torch.testing.assert_close(agent.policy()({"state": states}), base, rtol=0, atol=0)
    acting = ActingPolicy(spec, 4, config.learner, -np.ones(4), np.ones(4))
    acting.load(agent.actor_state_dict(), version=0)
    for state in states[:10].numpy():
        np.testing.assert_array_equal(acting.act({"state": state}, deterministic=True), state[-4:])
    # with a ramp, alpha_t = 0 at step 0: even the stochastic actions the actor explores with are the base
    ramped = SACAgent(spec, 4, residual_session(ramp_steps=1000).learner, seed=1)
    sampled, _ = ramped.actor.sample(ramped.encoder({"state": states}))
    torch.testing.assert_close(sampled, base, rtol=0, atol=0)


def test_executed_action_stays_within_alpha_of_the_base_and_inside_the_bounds(wrapped):
    config, env, spec = wrapped
    agent = SACAgent(spec, 4, residual_session(alpha=0.25).learner, seed=2)
    with torch.no_grad():  # a residual far from zero, pushing hard against the bounds
        agent.actor.trunk[-1].weight.normal_(0.0, 3.0)
        agent.actor.trunk[-1].bias.normal_(0.0, 3.0)
    states = torch.from_numpy(rollout_states(env, spec, seed=4))
    base = states[:, -4:]
    features = agent.encoder({"state": states})
    for executed in (agent.actor.deterministic(features), agent.actor.sample(features)[0]):
        assert (executed - base).abs().max().item() <= 0.25 + 1e-6
        assert executed.abs().max().item() <= 1.0
        assert (executed - base).abs().max().item() > 0.2  # the residual really moves it
    saturated = base.abs() == 1.0  # the expert's gripper command is always +-1: clipped on the outside
    assert saturated.any()


def test_alpha_ramps_with_learner_updates_and_travels_with_the_weights(wrapped):
    config, env, spec = wrapped
    ramped = residual_session(alpha=0.1, ramp_steps=10, utd=2).learner  # 20 learner updates to full alpha
    agent = SACAgent(spec, 4, ramped, seed=0)
    assert float(agent.actor.alpha_now) == 0.0
    for updates, expected in ((0, 0.0), (5, 0.025), (10, 0.05), (20, 0.1), (500, 0.1)):
        agent.actor.set_updates(updates)
        assert float(agent.actor.alpha_now) == pytest.approx(expected)

    demos = ReplayBuffer(spec, 4, 500, seed=0)
    states = rollout_states(env, spec, steps=65)
    for t in range(64):
        demos.add({"state": states[t]}, states[t, -4:], 0.0, False, False, {"state": states[t + 1]}, t == 0)
    agent.actor.set_updates(0)
    for _ in range(10):
        agent.update(batch_to_torch(sample_mixed(demos, demos, 32, 0.5)))
    # the learner sets alpha_t before each update: after update k it acted with k/20 of alpha
    assert float(agent.actor.alpha_now) == pytest.approx(0.1 * 9 / 20)
    weights = agent.actor_state_dict()
    assert float(weights["actor.alpha_now"]) == pytest.approx(0.045)
    acting = ActingPolicy(spec, 4, ramped, -np.ones(4), np.ones(4))
    acting.load(weights, version=3)
    assert float(acting.actor.alpha_now) == pytest.approx(0.045)
    restored = SACAgent(spec, 4, ramped, seed=5)  # a restarted learner resumes the ramp from its checkpoint
    restored.load_state_dict(agent.state_dict())
    assert float(restored.actor.alpha_now) == pytest.approx(0.045) and restored.updates == 10


def test_config_copies_the_residual_section_into_the_learner_and_rejects_a_stray_alpha():
    config = residual_session(alpha=0.2, ramp_steps=300)
    assert (config.learner.residual_alpha, config.learner.residual_ramp_steps) == (0.2, 300)
    assert config.learner.zero_init_actor_mean
    with pytest.raises(ConfigError, match="residual"):
        session_from_dict({"name": "x", "env": PICK_CUBE, "learner": {"residual_alpha": 0.1}})
    with pytest.raises(ConfigError, match="alpha"):
        session_from_dict({"name": "x", "env": PICK_CUBE, "residual": {"base": "expert", "alpha": 0.0}})
    with pytest.raises(ConfigError, match="max_actor_lead_steps"):  # would wait forever for its first batch
        residual_session(warmup_steps=0, batch_size=256)
    with pytest.raises(ConfigError, match="does not exist"):
        make_env(residual_session(base="/nonexistent/policy.onnx"))


@pytest.fixture(scope="module")
def bc_base(tmp_path_factory):
    """A quickly trained BC policy exported to ONNX, as `robot-rl train-bc` writes it."""
    work = tmp_path_factory.mktemp("bc_base")
    config = session_from_dict({"name": "bc_base", "env": PICK_CUBE})
    record_expert_demos(config, work / "demos", 3, log=lambda *a: None)
    episodes = [read_episode(p) for p in episode_paths(work / "demos")]
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    policy, _ = train_bc(episodes, spec, low, high, BCSettings(steps=100, hidden_dims=[64, 64]))
    export_spec = build_export_spec(env, spec, control_hz=control_hz(env, config), env_id=config.env,
                                    env_kwargs=config.env_kwargs, session="bc_base", training_run=work)
    parity = {"state": np.concatenate([e["obs/state"] for e in episodes])}
    path = export_onnx(policy, export_spec, work / "bc_policy.onnx", parity)["path"]
    env.close()
    return path


def test_composed_export_takes_the_plain_observation_and_matches_base_plus_residual(bc_base, tmp_path):
    config = residual_session(base=bc_base, alpha=0.3)
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    agent = SACAgent(spec, 4, config.learner, low, high, seed=0)
    with torch.no_grad():  # a non-trivial residual, so that the composition is really tested
        agent.actor.trunk[-1].weight.normal_(0.0, 0.5)
    export_spec = build_export_spec(env, spec, control_hz=10.0, env_id=config.env, env_kwargs={}, session="t",
                                    training_run=tmp_path)
    states = rollout_states(env, spec, steps=80, seed=6)
    exported, eval_env = export_residual_session(agent.policy(), config, export_spec, tmp_path / "policy.onnx",
                                                 {"state": states}, env)
    assert exported["parity_max_abs_err"] <= 1e-4
    assert eval_env is env.env
    embedded = read_spec(exported["path"])
    assert embedded["obs_spec"]["state_dim"] == spec.state_dim - 4
    assert embedded["residual"]["composed_with_base"] and embedded["residual"]["alpha"] == 0.3
    composed = OnnxPolicy(exported["path"])
    # stepping the plain env with the composed export = stepping the wrapped env with the torch residual policy
    raw, _ = env.reset(seed=9)
    for _ in range(10):
        state = flatten_obs(spec, raw)["state"]
        with torch.no_grad():
            want = agent.policy()({"state": torch.from_numpy(state)[None]})[0].numpy()
        np.testing.assert_allclose(composed({"state": state[:-4]}), want, atol=1e-4)
        raw, *_ = env.step(want)
    env.close()


def test_expert_base_export_says_the_base_action_is_part_of_the_state(wrapped, tmp_path):
    config, env, spec = wrapped
    agent = SACAgent(spec, 4, config.learner, seed=0)
    export_spec = build_export_spec(env, spec, control_hz=10.0, env_id=config.env, env_kwargs={}, session="t",
                                    training_run=tmp_path)
    exported, eval_env = export_residual_session(agent.policy(), config, export_spec, tmp_path / "policy.onnx",
                                                 {"state": rollout_states(env, spec, steps=20)}, env)
    embedded = read_spec(exported["path"])
    assert eval_env is env and embedded["residual"]["base_in_state"]
    assert embedded["obs_spec"]["state_dim"] == spec.state_dim
    assert embedded["obs_layout"][-1] == [BASE_ACTION_KEY, 4]
    assert json.dumps(embedded)  # plain JSON, no objects


@pytest.mark.slow
def test_residual_session_trains_through_learner_and_actor_and_exports(bc_base, tmp_path):
    """A short real session (learner + actor processes over ZeroMQ) on a BC base: runs, reports, exports composed."""
    from robot_rl.session import train

    session_file = tmp_path / "session.yaml"
    session_file.write_text(json.dumps({
        "name": "residual_smoke", "env": PICK_CUBE, "seed": 0,
        "residual": {"base": bc_base, "alpha": 0.1, "ramp_steps": 100},
        "learner": {"num_critics": 2, "hidden_dims": [64, 64], "batch_size": 64, "utd": 1, "warmup_steps": 0,
                    "weight_publish_every": 20},
        "demos": {"source": "expert", "episodes": 3},
        "train": {"max_env_steps": 200, "eval_every_env_steps": 100, "eval_episodes": 2, "final_eval_episodes": 3,
                  "max_actor_lead_steps": 64,
                  "max_minutes": 4},
    }))
    report = train(session_file, tmp_path / "run", quiet=True, log=lambda *a: None)
    assert report["env_steps"] == 200 and report["learner_updates"] > 0
    spec = read_spec(report["onnx_path"])
    assert spec["residual"]["composed_with_base"] and spec["obs_spec"]["state_dim"] == 13
    # torch (wrapped env) and the composed export (plain env) act alike on the same evaluation episodes
    assert report["onnx_success_rate"] == report["success_rate"]
    demo = read_episode(episode_paths(tmp_path / "run" / "demos")[0])
    assert demo["obs/state"].shape[1] == 17  # the demos were recorded with the base action in the state


def test_launch_file_loads_with_a_residual_section():
    config = load_session(Path(__file__).resolve().parents[2] / "launch" / "sim_pick_cube_residual.yaml")
    assert config.residual is not None and config.learner.residual_alpha == config.residual.alpha
    assert config.learner.warmup_steps == 0 and config.train.max_actor_lead_steps >= config.learner.batch_size
