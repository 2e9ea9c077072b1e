"""Networks for off-policy actor-critic: encoders, a tanh-Gaussian actor, a batched critic ensemble.

The critic ensemble is one module with stacked weights (one batched matmul per layer), not a
Python list of networks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def mlp(in_dim: int, hidden: list[int], out_dim: int, layer_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class BatchedLinear(nn.Module):
    """E independent linear layers applied as one batched matmul: [E, B, in] -> [E, B, out]."""

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default init, per member
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        return torch.baddbmm(bias, x, weight)


class BatchedLayerNorm(nn.Module):
    def __init__(self, members: int, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, width))
        self.bias = nn.Parameter(torch.zeros(members, 1, width))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        return F.layer_norm(x, x.shape[-1:]) * weight + bias


class CriticEnsemble(nn.Module):
    """Q(s, a) for E critics at once; returns [E, B]."""

    def __init__(self, feature_dim: int, action_dim: int, hidden: list[int], members: int, layer_norm: bool):
        super().__init__()
        self.members = members
        dims = [feature_dim + action_dim, *hidden]
        self.linears = nn.ModuleList(BatchedLinear(members, a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(BatchedLayerNorm(members, b) for b in hidden) if layer_norm else None
        self.head = BatchedLinear(members, dims[-1], 1)

    def forward(self, features: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        count = self.members if members is None else len(members)
        x = torch.cat([features, action], dim=-1).unsqueeze(0).expand(count, -1, -1)
        for i, linear in enumerate(self.linears):
            x = linear(x, members)
            if self.norms is not None:
                x = self.norms[i](x, members)
            x = F.relu(x)
        return self.head(x, members).squeeze(-1)


class ImageEncoder(nn.Module):
    """DrQ-style CNN per camera: uint8 [B, H, W, 3] -> [B, latent] (one conv stack per camera)."""

    def __init__(self, image_shapes: dict[str, tuple[int, int, int]], channels: list[int], latent_dim: int,
                 strides: list[int] | None = None):
        super().__init__()
        self.keys = list(image_shapes)
        self.convs = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        for key, (height, width, depth) in image_shapes.items():
            layers: list[nn.Module] = []
            in_ch = depth
            for i, ch in enumerate(channels):
                stride = strides[i] if strides else (2 if i == 0 else 1)
                layers += [nn.Conv2d(in_ch, ch, 3, stride=stride), nn.ReLU()]
                in_ch = ch
            conv = nn.Sequential(*layers)
            with torch.no_grad():
                flat = conv(torch.zeros(1, depth, height, width)).numel()
            self.convs[key] = conv
            self.projections[key] = nn.Sequential(nn.Linear(flat, latent_dim), nn.LayerNorm(latent_dim), nn.Tanh())
        self.output_dim = latent_dim * len(self.keys)

    def forward(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        outs = []
        for key in self.keys:
            x = images[key].permute(0, 3, 1, 2).float() / 255.0 - 0.5
            outs.append(self.projections[key](self.convs[key](x).flatten(1)))
        return torch.cat(outs, dim=-1)


class ObsEncoder(nn.Module):
    """{"state": float[B, S], cam: uint8[B, H, W, 3]} -> features [B, F]; state passes through."""

    def __init__(self, state_dim: int, image_shapes: dict, channels: list[int], latent_dim: int,
                 strides: list[int] | None = None):
        super().__init__()
        self.state_dim = state_dim
        self.images = ImageEncoder(image_shapes, channels, latent_dim, strides) if image_shapes else None
        self.output_dim = state_dim + (self.images.output_dim if self.images else 0)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [obs["state"]] if self.state_dim else []
        if self.images is not None:
            parts.append(self.images(obs))
        return torch.cat(parts, dim=-1)


class TanhGaussianActor(nn.Module):
    """pi(a|s) = tanh(N(mu(s), sigma(s))), actions in [-1, 1]^A."""

    def __init__(self, feature_dim: int, action_dim: int, hidden: list[int], layer_norm: bool, zero_init_mean: bool = False):
        super().__init__()
        self.trunk = mlp(feature_dim, hidden, 2 * action_dim, layer_norm)
        if zero_init_mean:  # residual RL: the deterministic action starts at exactly tanh(0) = 0
            with torch.no_grad():
                self.trunk[-1].weight[:action_dim].zero_()
                self.trunk[-1].bias[:action_dim].zero_()

    def distribution_params(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.trunk(features).chunk(2, dim=-1)
        # soft clamp keeps gradients alive at the bounds (as in DrQ/SERL)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
        return mean, log_std

    def sample(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_std = self.distribution_params(features)
        std = log_std.exp()
        pre_tanh = mean + std * torch.randn_like(mean)
        action = torch.tanh(pre_tanh)
        log_prob = (-0.5 * ((pre_tanh - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), numerically stable
        log_prob = log_prob - (2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)
        return action, log_prob

    def deterministic(self, features: torch.Tensor) -> torch.Tensor:
        mean, _ = self.distribution_params(features)
        return torch.tanh(mean)


class DeterministicPolicy(nn.Module):
    """The frozen deployable policy: raw observation -> action in the env's units.

    Encoder + actor mean + tanh + rescale to [low, high]; this is what is exported to ONNX.
    """

    def __init__(self, encoder: ObsEncoder, actor: TanhGaussianActor, action_low, action_high):
        super().__init__()
        self.encoder = encoder
        self.actor = actor
        low = torch.as_tensor(action_low, dtype=torch.float32)
        high = torch.as_tensor(action_high, dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2.0)
        self.register_buffer("action_bias", (high + low) / 2.0)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.actor.deterministic(self.encoder(obs)) * self.action_scale + self.action_bias
