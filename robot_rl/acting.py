"""The policy as an actor process holds it: encoder + tanh-Gaussian actor, swapped by version."""

from __future__ import annotations

import numpy as np
import safetensors.torch
import torch

from policies.networks import DeterministicPolicy, ObsEncoder
from policies.residual import build_actor
from robot_rl.config import LearnerConfig
from robot_rl.spaces import ObsSpec


def weights_to_bytes(state: dict[str, torch.Tensor]) -> bytes:
    return safetensors.torch.save(state)


def weights_from_bytes(blob: bytes) -> dict[str, torch.Tensor]:
    return safetensors.torch.load(blob)


class ActingPolicy:
    def __init__(self, spec: ObsSpec, action_dim: int, config: LearnerConfig, action_low, action_high):
        self.spec = spec
        self.encoder = ObsEncoder(spec.state_dim, spec.image_shapes, config.image_encoder_channels, config.image_latent_dim,
                                   config.image_encoder_strides)
        self.actor = build_actor(self.encoder.output_dim, action_dim, config, spec.state_dim)  # plain, or residual on a base
        self.deploy = DeterministicPolicy(self.encoder, self.actor, action_low, action_high).eval()
        self.version = -1

    def load(self, state: dict[str, torch.Tensor], version: int) -> None:
        self.encoder.load_state_dict({k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")})
        self.actor.load_state_dict({k[len("actor."):]: v for k, v in state.items() if k.startswith("actor.")})
        self.version = version

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray], deterministic: bool) -> np.ndarray:
        """One observation -> normalized action in [-1, 1]."""
        batch = {k: torch.from_numpy(np.ascontiguousarray(v)).unsqueeze(0) for k, v in obs.items()}
        features = self.encoder(batch)
        if deterministic:
            action = self.actor.deterministic(features)
        else:
            action, _ = self.actor.sample(features)
        return action[0].numpy()
