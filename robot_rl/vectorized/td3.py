"""TD3 (Fujimoto et al. 2018) with an asymmetric critic, one update readable top to bottom.

sample -> target action with clipped smoothing noise -> TD target from the min of two target
critics (on the critic's privileged observation) -> critic loss -> every ``policy_delay``
updates: actor loss (deterministic policy gradient through the first critic) -> Polyak targets.

The actor sees what the robot sees (``obs``); the critic also sees privileged, noise-free state
(``critic_obs``), as in "Learning to Fly in Seconds" (Eschmann et al. 2023).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from policies.networks import CriticEnsemble, mlp


@dataclass(frozen=True)
class TD3Config:
    hidden_dims: tuple[int, ...] = (64, 64)  # L2F actor and critic width
    discount: float = 0.99  # L2F
    tau: float = 0.005  # Fujimoto et al.
    actor_lr: float = 1e-3
    critic_lr: float = 1e-3
    policy_delay: int = 2  # Fujimoto et al.
    target_noise_std: float = 0.2  # Fujimoto et al. target policy smoothing
    target_noise_clip: float = 0.5
    num_critics: int = 2  # clipped double Q
    activation: str = "relu"  # L2F: FAST_TANH hidden layers; see VectorSessionConfig.td3 for the choice
    initial_action: float = 0.0  # the actor's output bias starts at atanh of this (e.g. the hover command)
    critic_layer_norm: bool = False  # LayerNorm in the critic's hidden layers (RLPD, Ball et al. 2023)


ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def _with_activation(trunk: nn.Sequential, activation: str) -> nn.Sequential:
    return nn.Sequential(*(ACTIVATIONS[activation]() if isinstance(m, nn.ReLU) else m for m in trunk))


class DeterministicActor(nn.Module):
    """obs -> tanh(MLP(obs)) in [-1, 1]^A; this is the module exported to ONNX and C."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], initial_action: float = 0.0,
                 activation: str = "relu"):
        super().__init__()
        self.trunk = _with_activation(mlp(obs_dim, list(hidden), action_dim, layer_norm=False), activation)
        with torch.no_grad():  # start near a known-good constant action instead of mid-range
            self.trunk[-1].bias.fill_(math.atanh(initial_action))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.trunk(obs))


class TanhCriticEnsemble(CriticEnsemble):
    """The batched critic ensemble with tanh hidden units (L2F) instead of ReLU."""

    def forward(self, features, action, members=None):
        count = self.members if members is None else len(members)
        x = torch.cat([features, action], dim=-1).unsqueeze(0).expand(count, -1, -1)
        for i, linear in enumerate(self.linears):
            x = linear(x, members)
            x = torch.tanh(x if self.norms is None else self.norms[i](x, members))
        return self.head(x, members).squeeze(-1)


class TD3Agent:
    def __init__(self, obs_dim: int, critic_obs_dim: int, action_dim: int, config: TD3Config, seed: int = 0):
        torch.manual_seed(seed)
        self.config = config
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"activation {config.activation!r} is not one of {sorted(ACTIVATIONS)}.")
        self.actor = DeterministicActor(obs_dim, action_dim, config.hidden_dims, config.initial_action, config.activation)
        critic_type = TanhCriticEnsemble if config.activation == "tanh" else CriticEnsemble
        self.critic = critic_type(critic_obs_dim, action_dim, list(config.hidden_dims), config.num_critics,
                                  config.critic_layer_norm)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.policy: nn.Module = self.actor  # what is evaluated and deployed (e.g. a group average of the actor)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr, fused=True)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr, fused=True)
        self.updates = 0
        self._actor_params = list(self.actor.parameters())
        self._first_critic = torch.zeros(1, dtype=torch.long)
        self._polyak_online = [*self.critic.parameters(), *self._actor_params]
        self._polyak_targets = [*self.target_critic.parameters(), *self.target_actor.parameters()]

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """The exploring actor's action (before exploration noise)."""
        return self.actor(obs)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One TD3 step; returns metrics as 0-d tensors (no .item() sync in the hot loop)."""
        cfg = self.config
        obs, critic_obs, action = batch["obs"], batch["critic_obs"], batch["action"]
        next_obs, next_critic_obs = batch["next_obs"], batch["next_critic_obs"]

        # TD target: smoothed target action, min over the target critics; timeouts bootstrap
        with torch.no_grad():
            noise = (torch.randn_like(action) * cfg.target_noise_std).clamp(-cfg.target_noise_clip, cfg.target_noise_clip)
            next_action = (self.target_actor(next_obs) + noise).clamp(-1.0, 1.0)
            next_q = self.target_critic(next_critic_obs, next_action).min(dim=0).values
            target_q = batch["reward"] + cfg.discount * (1.0 - batch["terminated"]) * next_q

        q = self.critic(critic_obs, action)
        critic_loss = F.mse_loss(q, target_q.unsqueeze(0).expand_as(q))
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        metrics = {"critic_loss": critic_loss.detach(), "q_mean": q.detach().mean()}

        self.updates += 1
        if self.updates % cfg.policy_delay == 0:
            actor_loss = -self.critic(critic_obs, self.actor(obs), self._first_critic).mean()
            # gradients for the actor's parameters only: the critic's weights are not differentiated
            for parameter, grad in zip(self._actor_params, torch.autograd.grad(actor_loss, self._actor_params)):
                parameter.grad = grad
            self.actor_opt.step()
            metrics["actor_loss"] = actor_loss.detach()
            with torch.no_grad():  # Polyak target update, one fused op per parameter list
                torch._foreach_lerp_(self._polyak_targets, self._polyak_online, cfg.tau)
        return metrics

    def state_dict(self) -> dict:
        return {
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "target_actor": self.target_actor.state_dict(), "target_critic": self.target_critic.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "updates": self.updates,
        }
