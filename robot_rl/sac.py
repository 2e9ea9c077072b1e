"""RLPD-style SAC (Ball et al. 2023; SERL, Luo et al. 2024), one update readable top to bottom.

sample -> (DrQ shift) -> TD target over a random pair of target critics -> critic loss over the
ensemble -> actor loss against the ensemble mean -> temperature -> Polyak target update.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from policies.networks import CriticEnsemble, DeterministicPolicy, ObsEncoder
from policies.residual import ResidualActor, build_actor
from robot_rl.config import LearnerConfig
from robot_rl.spaces import ObsSpec


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """DrQ augmentation: pad by replication, crop back at a random offset per sample. uint8 [B,H,W,C]."""
    if pad == 0:
        return images
    batch, height, width, _ = images.shape
    padded = F.pad(images.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (batch, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (batch, 1, 1), generator=generator)
    rows = (torch.arange(height).view(1, height, 1) + dy).expand(batch, height, width)
    cols = (torch.arange(width).view(1, 1, width) + dx).expand(batch, height, width)
    batch_idx = torch.arange(batch).view(batch, 1, 1).expand(batch, height, width)
    shifted = padded.permute(0, 2, 3, 1)[batch_idx, rows, cols]
    return shifted.to(torch.uint8)


class SACAgent:
    def __init__(self, spec: ObsSpec, action_dim: int, config: LearnerConfig, action_low=None, action_high=None, seed: int = 0):
        torch.manual_seed(seed)
        self.spec, self.config, self.action_dim = spec, config, action_dim
        self.action_low = np.full(action_dim, -1.0, np.float32) if action_low is None else np.asarray(action_low, np.float32)
        self.action_high = np.full(action_dim, 1.0, np.float32) if action_high is None else np.asarray(action_high, np.float32)
        self.generator = torch.Generator().manual_seed(seed + 1)

        self.encoder = ObsEncoder(spec.state_dim, spec.image_shapes, config.image_encoder_channels, config.image_latent_dim,
                                   config.image_encoder_strides)
        feature_dim = self.encoder.output_dim
        self.actor = build_actor(feature_dim, action_dim, config, spec.state_dim)  # plain, or residual on a base
        self.critic = CriticEnsemble(feature_dim, action_dim, config.hidden_dims, config.num_critics, config.layer_norm)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(config.init_temperature)), requires_grad=True)
        self.target_entropy = -config.target_entropy_scale * action_dim

        # the encoder learns from the critic loss only; the actor sees detached features (DrQ/SERL)
        self.critic_opt = torch.optim.Adam([*self.critic.parameters(), *self.encoder.parameters()], lr=config.critic_lr, fused=True)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, fused=True)
        self.temp_opt = torch.optim.Adam([self.log_alpha], lr=config.temp_lr, fused=True)
        self.updates = 0

    # ----- acting -------------------------------------------------------------------------
    def policy(self) -> DeterministicPolicy:
        return DeterministicPolicy(self.encoder, self.actor, self.action_low, self.action_high)

    def actor_state_dict(self) -> dict[str, torch.Tensor]:
        """What an actor process needs: encoder + actor weights (published to actors)."""
        out = {f"encoder.{k}": v for k, v in self.encoder.state_dict().items()}
        out.update({f"actor.{k}": v for k, v in self.actor.state_dict().items()})
        return {k: v.detach().clone().contiguous() for k, v in out.items()}

    # ----- learning -----------------------------------------------------------------------
    def _augment(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.spec.has_images:
            return obs
        out = dict(obs)
        for key in self.spec.image_keys:
            out[key] = random_shift(obs[key], self.config.drq_pad, self.generator)
        return out

    def update(self, batch: dict, update_actor: bool = True) -> dict[str, float]:
        cfg = self.config
        obs, next_obs = self._augment(batch["obs"]), self._augment(batch["next_obs"])
        action, reward, terminated = batch["action"], batch["reward"], batch["terminated"]
        alpha = self.log_alpha.exp().detach()
        if isinstance(self.actor, ResidualActor):  # progressive enabling: alpha_t follows the update count
            self.actor.set_updates(self.updates)

        # TD target: min over a random subset of target critics (RLPD); timeouts bootstrap
        with torch.no_grad():
            next_features = self.target_encoder(next_obs)
            next_action, next_log_prob = self.actor.sample(self.encoder(next_obs))
            members = torch.randperm(cfg.num_critics, generator=self.generator)[: cfg.critic_subsample]
            next_q = self.target_critic(next_features, next_action, members).min(dim=0).values
            if cfg.backup_entropy:
                next_q = next_q - alpha * next_log_prob
            target_q = reward + cfg.discount * (1.0 - terminated) * next_q

        features = self.encoder(obs)
        q = self.critic(features, action)
        critic_loss = F.mse_loss(q, target_q.unsqueeze(0).expand_as(q))
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        metrics = {"critic_loss": critic_loss.item(), "q_mean": q.mean().item(), "q_std_ensemble": q.std(0).mean().item()}
        if update_actor:
            detached = features.detach()
            new_action, log_prob = self.actor.sample(detached)
            self.critic.requires_grad_(False)  # the actor loss needs dQ/da only, not critic weight grads
            q_pi = self.critic(detached, new_action).mean(dim=0)
            self.critic.requires_grad_(True)
            actor_loss = (alpha * log_prob - q_pi).mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()

            temp_loss = -(self.log_alpha * (log_prob.detach() + self.target_entropy)).mean()
            self.temp_opt.zero_grad(set_to_none=True)
            temp_loss.backward()
            self.temp_opt.step()
            metrics.update(actor_loss=actor_loss.item(), entropy=-log_prob.mean().item(), temperature=alpha.item())

        with torch.no_grad():  # Polyak target update, one fused op per parameter list
            for online, target in ((self.critic, self.target_critic), (self.encoder, self.target_encoder)):
                targets = list(target.parameters())
                if targets:
                    torch._foreach_lerp_(targets, list(online.parameters()), cfg.tau)
        self.updates += 1
        return metrics

    # ----- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "encoder": self.encoder.state_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "target_encoder": self.target_encoder.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "critic_opt": self.critic_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "temp_opt": self.temp_opt.state_dict(),
            "updates": self.updates,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        for name in ("encoder", "actor", "critic", "target_encoder", "target_critic"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.temp_opt.load_state_dict(state["temp_opt"])
        self.updates = int(state["updates"])
        self.generator.set_state(state["generator"])


def batch_to_torch(batch: dict) -> dict:
    def convert(value):
        if isinstance(value, dict):
            return {k: torch.from_numpy(v) for k, v in value.items()}
        return torch.from_numpy(value)

    return {k: convert(v) for k, v in batch.items()}
