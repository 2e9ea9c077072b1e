"""The RC car seen through its frozen camera encoder: the CPU path of the FastRLAP camera task.

`CameraEmbedding` replaces the camera frame by the pretrained encoder's embedding, computed once
per env step, and appends it to the IMU-like state: replay and learner updates are then MLP-sized,
so 10 critics at UTD 8 fit on a CPU (FastRLAP's own recipe: a pretrained encoder kept frozen).
``robot_rl/RCCarRaceEmbedding-v0`` (registered by ``sim2real``) builds it; env kwargs are
``RCCarRaceEnv``'s plus ``encoder_path``. `prepare_camera_encoder` (a session preparation step)
resolves that path against the run directory and pretrains the encoder there when it is missing.
Deployment stays camera-in: `CameraPolicy` composes encoder and actor, exported as one ONNX graph.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim2real import RC_CAR_CAMERA_ENV as ENV_ID
from sim2real.rc_car.encoder import EMBED_DIM, LABEL_NAMES, PretrainSettings, load_encoder, pretrain_encoder, save_encoder
from sim2real.rc_car.env import RCCarRaceEnv

DEFAULT_ENCODER = "encoder/rc_car_camera_encoder.safetensors"  # relative paths live in the run directory


class CameraEmbedding(gym.ObservationWrapper):
    """{"state": S, "camera": HxWx3} → float32 [S + EMBED_DIM]: the state, then the frozen encoder's output."""

    def __init__(self, env: gym.Env, encoder_path: str | Path):
        super().__init__(env)
        camera = env.observation_space["camera"]
        self.encoder = load_encoder(encoder_path, camera.shape[0])
        self.encoder_path = str(encoder_path)
        self.camera_state_dim = env.observation_space["state"].shape[0]
        self.observation_space = spaces.Box(-np.inf, np.inf, (self.camera_state_dim + EMBED_DIM,), np.float32)

    def embed(self, camera: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.encoder(torch.from_numpy(np.ascontiguousarray(camera)[None]))[0].numpy()

    def observation(self, obs):
        return np.concatenate([obs["state"], self.embed(obs["camera"])]).astype(np.float32)


def make_embedding_env(encoder_path: str | None = None, **kwargs) -> gym.Env:
    if encoder_path is None:
        raise ValueError(f"{ENV_ID} needs env_kwargs.encoder_path (a camera encoder .safetensors file); a session "
                         "resolves and pretrains it, see launch/sim_rc_car_camera.yaml.")
    if kwargs.pop("obs_mode", "pixels") != "pixels":
        raise ValueError(f"{ENV_ID} embeds the camera: drop env_kwargs.obs_mode (or use robot_rl/RCCarRaceState-v0).")
    return CameraEmbedding(RCCarRaceEnv(obs_mode="pixels", **kwargs), encoder_path)


def encoder_path(config, run_root: Path) -> Path:
    path = Path(config.env_kwargs.get("encoder_path") or DEFAULT_ENCODER).expanduser()
    return path if path.is_absolute() else (Path(run_root) / path).resolve()


def prepare_camera_encoder(config, run_root: Path, log=print):
    """The session config with ``env_kwargs.encoder_path`` absolute and the encoder present (pretrained if missing)."""
    if config.env != ENV_ID:
        return config
    path = encoder_path(config, run_root)
    if not path.is_file():
        import torch

        torch.set_num_threads(1)
        log(f"camera encoder: none at {path}; pretraining one on tracks other than the default (about 1-3 min)")
        settings = PretrainSettings(seed=config.seed, image_size=int(config.env_kwargs.get("image_size", 64)))
        model, report = pretrain_encoder(settings, log=log)
        save_encoder(path, model, report)
        path.with_suffix(".json").write_text(json.dumps(report, indent=2))
    kwargs = {**config.env_kwargs, "encoder_path": str(path)}
    return config.model_copy(update={"env_kwargs": kwargs})


def camera_policy(encoder, policy):
    """One module: {"state": S, "camera": uint8 HxWx3} → action, i.e. ``policy`` on [state, encoder(camera)]."""
    import torch
    from torch import nn

    class CameraPolicy(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder, self.policy = encoder, policy

        def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
            state = torch.cat([obs["state"], self.encoder(obs["camera"])], dim=1)
            return self.policy({"state": state})

    return CameraPolicy().eval()


def camera_observations(pixel_env: gym.Env, count: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Camera-task observations from the slow scripted lap with steering noise (export parity inputs)."""
    from sim2real.rc_car.expert import RCCarExpert

    expert, rng = RCCarExpert(pixel_env.unwrapped, "slow"), np.random.default_rng(seed)
    obs, _ = pixel_env.reset(seed=seed)
    states, cameras = [], []
    for _ in range(count):
        states.append(obs["state"])
        cameras.append(obs["camera"])
        action = np.clip(expert.act(obs) + rng.normal(0, 0.3, 2), -1, 1).astype(np.float32)
        obs, _, terminated, truncated, _ = pixel_env.step(action)
        if terminated or truncated:
            obs, _ = pixel_env.reset()
    return {"state": np.stack(states), "camera": np.stack(cameras)}


def export_camera_session(policy, env, export_spec_for, path: str | Path) -> tuple[dict, gym.Env]:
    """Export encoder + actor as one camera-in ONNX graph; returns the export figures and the camera env to evaluate it in.

    ``policy`` takes ``state = [state, embedding]`` (the embedding env's observation); ``env`` is
    that env; ``export_spec_for(env, obs_spec)`` builds the export spec of the camera env.
    """
    from policies.export.onnx_export import export_onnx
    from robot_rl.spaces import obs_spec_from_space

    wrapper = env
    while not isinstance(wrapper, CameraEmbedding):
        wrapper = wrapper.env
    pixel_env = wrapper.env
    spec = export_spec_for(pixel_env, obs_spec_from_space(pixel_env.observation_space))
    spec = {**spec, "camera_encoder": {"path": wrapper.encoder_path, "embedding": list(LABEL_NAMES), "frozen": True}}
    composed = camera_policy(wrapper.encoder, policy)
    exported = export_onnx(composed, spec, path, camera_observations(pixel_env), tolerance=1e-4)
    limit = env.spec.max_episode_steps if env.spec is not None else None  # gym.make's TimeLimit sits above the embedding
    return exported, (gym.wrappers.TimeLimit(pixel_env, limit) if limit else pixel_env)
