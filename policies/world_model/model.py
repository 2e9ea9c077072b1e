"""The TD-MPC2 world model: encoder to a SimNorm latent, latent dynamics, reward head, Q ensemble, policy prior.

Rewards and Q-values are discrete regressions over two-hot bins (``twohot.py``). The Q ensemble is
one module with stacked weights (one batched matmul per layer); its target copy is Polyak-averaged
by the agent. State observations only (``{"state": float[B, S]}``).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from policies.world_model.config import ModelSettings
from policies.world_model.twohot import TwoHot


class SimNorm(nn.Module):
    """Simplicial normalization: softmax over groups of ``group`` latent entries (TD-MPC2)."""

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return F.softmax(x.reshape(*shape[:-1], -1, self.group), dim=-1).reshape(shape)


class NormedLinear(nn.Sequential):
    """Linear -> (dropout) -> LayerNorm -> activation (Mish by default), TD-MPC2's building block."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0, act: nn.Module | None = None):
        layers = [nn.Linear(in_dim, out_dim)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers, nn.LayerNorm(out_dim), act if act is not None else nn.Mish())


def mlp(in_dim: int, hidden: list[int], out_dim: int, out_act: nn.Module | None = None) -> nn.Sequential:
    """Normed hidden layers; a plain Linear output, or a normed one ending in ``out_act`` (e.g. SimNorm)."""
    dims = [in_dim, *hidden]
    layers = [NormedLinear(a, b) for a, b in zip(dims[:-1], dims[1:])]
    layers.append(NormedLinear(dims[-1], out_dim, act=out_act) if out_act is not None else nn.Linear(dims[-1], out_dim))
    return nn.Sequential(*layers)


class QEnsemble(nn.Module):
    """``num_q`` Q-heads (in -> h -> h -> bins, normed, dropout after the first layer) as stacked weights."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, num_q: int, dropout: float):
        super().__init__()
        self.num_q, self.dropout = num_q, dropout
        dims = [(in_dim, hidden), (hidden, hidden), (hidden, out_dim)]
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(num_q, a, b)) for a, b in dims)
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(num_q, 1, b)) for _, b in dims)
        self.norm_weights = nn.ParameterList(nn.Parameter(torch.ones(num_q, 1, hidden)) for _ in range(2))
        self.norm_biases = nn.ParameterList(nn.Parameter(torch.zeros(num_q, 1, hidden)) for _ in range(2))
        for weight in self.weights[:2]:
            nn.init.trunc_normal_(weight, std=0.02)  # TD-MPC2 weight_init
        nn.init.zeros_(self.weights[2])  # TD-MPC2 zero-initializes the value output layers

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """x [..., in] -> logits [E, ..., out] for all members, or for the ``members`` indices given."""
        lead = x.shape[:-1]
        pick = (lambda p: p) if members is None else (lambda p: p[members])
        count = self.num_q if members is None else len(members)
        h = x.reshape(1, -1, x.shape[-1]).expand(count, -1, -1)
        for layer in range(3):
            h = torch.baddbmm(pick(self.biases[layer]), h, pick(self.weights[layer]))
            if layer < 2:
                if layer == 0 and self.dropout > 0:
                    h = F.dropout(h, self.dropout, self.training)
                h = F.layer_norm(h, h.shape[-1:]) * pick(self.norm_weights[layer]) + pick(self.norm_biases[layer])
                h = F.mish(h)
        return h.reshape(count, *lead, h.shape[-1])


def _init_linear(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)  # TD-MPC2 weight_init
        nn.init.zeros_(module.bias)


class WorldModel(nn.Module):
    def __init__(self, state_dim: int, action_dim: int, cfg: ModelSettings):
        super().__init__()
        if cfg.latent_dim % cfg.simnorm_dim:
            raise ValueError(f"latent_dim ({cfg.latent_dim}) must be a multiple of simnorm_dim ({cfg.simnorm_dim})")
        self.cfg, self.state_dim, self.action_dim = cfg, state_dim, action_dim
        self.twohot = TwoHot(cfg.num_bins, cfg.vmin, cfg.vmax)
        latent, hidden = cfg.latent_dim, [cfg.mlp_dim, cfg.mlp_dim]
        self.encoder = mlp(state_dim, [cfg.enc_dim] * (cfg.num_enc_layers - 1), latent, SimNorm(cfg.simnorm_dim))
        self.dynamics = mlp(latent + action_dim, hidden, latent, SimNorm(cfg.simnorm_dim))
        self.reward = mlp(latent + action_dim, hidden, cfg.num_bins)
        self.pi = mlp(latent, hidden, 2 * action_dim)
        self.q = QEnsemble(latent + action_dim, cfg.mlp_dim, cfg.num_bins, cfg.num_q, cfg.q_dropout)
        self.apply(_init_linear)
        nn.init.zeros_(self.reward[-1].weight)  # TD-MPC2: rewards start at 0
        self.target_q = copy.deepcopy(self.q).requires_grad_(False)
        # state standardization, set from data (``set_state_statistics``): raw pick-cube states differ by centimetres,
        # which the encoder's small initial weights map to nearly one latent (measured: Q then ignores the state)
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))

    def set_state_statistics(self, states: torch.Tensor, min_std: float = 1e-2) -> None:
        self.state_mean.copy_(states.mean(0))
        self.state_std.copy_(states.std(0).clamp(min=min_std))

    def num_parameters(self) -> int:
        """Learned parameters (the target Q copy is not counted: it is an average, not learned)."""
        return sum(p.numel() for name, p in self.named_parameters() if not name.startswith("target_q."))

    # ----- latent model -------------------------------------------------------------------
    def encode(self, state: torch.Tensor) -> torch.Tensor:
        return self.encoder((state - self.state_mean) / self.state_std)

    def next(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.dynamics(torch.cat([z, action], -1))

    def reward_logits(self, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return self.reward(torch.cat([z, action], -1))

    def q_logits(self, z: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None,
                 target: bool = False) -> torch.Tensor:
        return (self.target_q if target else self.q)(torch.cat([z, action], -1), members)

    def q_value(self, z: torch.Tensor, action: torch.Tensor, reduce: str, target: bool = False,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """min or mean over two random ensemble members, decoded to scalars [...] (TD-MPC2)."""
        members = torch.randperm(self.cfg.num_q, generator=generator)[:2]
        values = self.twohot.decode(self.q_logits(z, action, members, target))
        return values.min(0).values if reduce == "min" else values.mean(0)

    # ----- policy prior -------------------------------------------------------------------
    def pi_sample(self, z: torch.Tensor, generator: torch.Generator | None = None):
        """tanh-Gaussian prior: (sampled action, its log-probability [...], deterministic action)."""
        mean, log_std = self.pi(z).chunk(2, -1)
        cfg = self.cfg
        log_std = cfg.log_std_min + 0.5 * (cfg.log_std_max - cfg.log_std_min) * (torch.tanh(log_std) + 1)
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        raw = mean + eps * log_std.exp()
        log_prob = (-0.5 * eps.pow(2) - log_std).sum(-1) - 0.5 * math.log(2 * math.pi) * mean.shape[-1]
        action = torch.tanh(raw)
        log_prob = log_prob - torch.log(F.relu(1 - action.pow(2)) + 1e-6).sum(-1)
        return action, log_prob, torch.tanh(mean)

    def pi_mean(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.pi(z)[..., : self.action_dim])
