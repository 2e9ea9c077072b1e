"""Run directories for the export/deploy tests, built by hand the way ``robot-rl train`` lays them out:
config.yaml, the actor weights as final_policy.safetensors (freshly initialised, seeded) and expert demos."""

from __future__ import annotations

from pathlib import Path

import torch

from robot_rl.acting import ActingPolicy, weights_to_bytes
from robot_rl.config import dump_session, session_from_dict
from robot_rl.envs import action_bounds, make_env
from robot_rl.rundir import RunDir
from robot_rl.session import record_expert_demos
from robot_rl.spaces import obs_spec_from_space

STATE_SESSION = {"name": "export_state", "env": "robot_rl/PickCube-v0", "seed": 0, "learner": {"num_critics": 2}}
STATE_100HZ_SESSION = {**STATE_SESSION, "name": "export_state_100hz",
                       "env_kwargs": {"control_hz": 100, "max_episode_steps": 500}}
PIXEL_SESSION = {
    "name": "export_pixels", "env": "robot_rl/PickCubePixels-v0", "seed": 0, "env_kwargs": {"image_size": 64},
    "learner": {"num_critics": 2, "hidden_dims": [64, 64], "image_encoder_channels": [8, 8],
                "image_encoder_strides": [2, 2], "image_latent_dim": 16},
}


def make_run(root: Path, session: dict, demos: int) -> RunDir:
    run = RunDir(Path(root)).make()
    config = session_from_dict(session)
    dump_session(config, run.config)
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    env.close()
    torch.manual_seed(0)
    policy = ActingPolicy(spec, len(low), config.learner, low, high)
    weights = {f"encoder.{k}": v for k, v in policy.encoder.state_dict().items()}
    weights.update({f"actor.{k}": v for k, v in policy.actor.state_dict().items()})
    run.final_policy.write_bytes(weights_to_bytes(weights))
    if demos:
        record_expert_demos(config, run.demos, demos, log=lambda *_: None)
    return run


def torch_policy(run: RunDir):
    """The run's deterministic torch policy, loaded independently of the exporter."""
    from robot_rl.commands.export import load_run_policy

    _run, _config, env, _spec, policy, _source = load_run_policy(run.root)
    env.close()
    return policy.deploy
