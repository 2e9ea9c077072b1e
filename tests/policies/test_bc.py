"""Behaviour cloning: chunked targets, learning the pick-cube expert from a few demos, ONNX export, `robot-rl train-bc`."""

from __future__ import annotations

import argparse
import shutil

import numpy as np
import pytest
import torch

from policies.bc import BCPolicy, BCSettings, chunk_dataset, load_bc, save_bc, train_bc
from policies.export.onnx_export import OnnxPolicy, read_spec
from robot_rl.actor import evaluate_policy
from robot_rl.commands import train_bc as train_bc_command
from robot_rl.config import dump_session, session_from_dict
from robot_rl.envs import action_bounds, denormalize_action, make_env
from robot_rl.episodes import episode_paths, read_episode, write_episode
from robot_rl.session import record_expert_demos
from robot_rl.spaces import ObsSpec, obs_spec_from_space

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A run folder as `robot-rl train` leaves it: config.yaml and 5 scripted-expert demos (noise 0.1)."""
    root = tmp_path_factory.mktemp("bc_run")
    config = session_from_dict({"name": "bc_test", "env": "robot_rl/PickCube-v0"})
    dump_session(config, root / "config.yaml")
    record_expert_demos(config, root / "demos", 5, log=lambda *a: None)
    return root, config


def test_chunk_targets_repeat_the_last_action_and_mask_past_the_episode_end():
    spec = ObsSpec(state_dim=2)
    episode = {"obs/state": np.arange(8, dtype=np.float32).reshape(4, 2), "action": np.arange(3, dtype=np.float32)[:, None]}
    data = chunk_dataset([episode], spec, chunk=3)
    assert data["obs/state"].shape == (3, 2) and data["actions"].shape == (3, 3, 1)
    np.testing.assert_array_equal(data["actions"][:, :, 0], [[0, 1, 2], [1, 2, 2], [2, 2, 2]])
    np.testing.assert_array_equal(data["mask"], [[1, 1, 1], [1, 1, 0], [1, 0, 0]])


def test_chunked_policy_output_shapes():
    policy = BCPolicy(ObsSpec(state_dim=5), np.array([-2.0, 0.0]), np.array([2.0, 1.0]), BCSettings(chunk=6, hidden_dims=[16]))
    obs = {"state": torch.zeros(7, 5)}
    assert policy.chunk(obs).shape == (7, 6, 2)
    assert policy(obs).shape == (7, 2)  # the deployed action: the chunk's first step, in env units
    assert policy.act({"state": np.zeros(5, np.float32)}).shape == (2,)


def test_bc_learns_the_expert_from_five_demos(demo_run, tmp_path):
    root, config = demo_run
    episodes = [read_episode(p) for p in episode_paths(root / "demos")]
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    policy, figures = train_bc(episodes, spec, low, high, BCSettings(steps=200, hidden_dims=[128, 128]))
    result = evaluate_policy(env, lambda o: denormalize_action(policy.act(o), low, high), 20, 1_000_000)
    env.close()
    # measured with these settings: 1.0 / 0.85 / 1.0 success for BC seeds 0 / 1 / 2 (20 episodes)
    assert result["success_rate"] >= 0.75, result
    reloaded = load_bc(save_bc(policy, tmp_path / "bc.safetensors"))
    obs = {"state": torch.from_numpy(episodes[0]["obs/state"])}
    torch.testing.assert_close(reloaded(obs), policy(obs), rtol=0, atol=0)


def _args(root, **overrides):
    parser = argparse.ArgumentParser()
    train_bc_command.register(parser.add_subparsers())
    argv = ["train-bc", str(root), "--steps", "150", "--eval-episodes", "3"]
    for key, value in overrides.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    return parser.parse_args(argv)


def test_train_bc_command_exports_onnx_that_matches_torch(demo_run):
    root, _ = demo_run
    args = _args(root, chunk=3)
    assert args.func(args) == 0
    onnx_path = root / "exports" / "bc_policy.onnx"
    spec = read_spec(onnx_path)
    assert spec["policy"]["kind"] == "bc" and spec["policy"]["chunk"] == 3 and spec["action_dim"] == 4
    policy = load_bc(root / "checkpoints" / "bc_policy.safetensors")
    runner = OnnxPolicy(onnx_path)  # what the deploy runner and a residual session's base use
    states = np.concatenate([read_episode(p)["obs/state"] for p in episode_paths(root / "demos")])
    with torch.no_grad():
        want = policy({"state": torch.from_numpy(states)}).numpy()
    got = np.stack([runner({"state": s}) for s in states])
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_train_bc_command_reads_the_hg_dagger_store_and_says_when_it_is_empty(demo_run, capsys):
    root, _ = demo_run
    args = _args(root, source="bc")
    shutil.rmtree(root / "bc", ignore_errors=True)
    assert args.func(args) == 2
    assert "no episodes" in capsys.readouterr().err
    for i, path in enumerate(episode_paths(root / "demos")[:2]):  # HG-DAgger labels use the demo episode format
        write_episode(root / "bc", i, read_episode(path))
    both = _args(root, source="both", eval_episodes=0)
    assert both.func(both) == 0
    assert read_spec(root / "exports" / "bc_policy.onnx")["policy"]["episodes"] == 7
