"""A deterministic policy averaged over a symmetry group of its robot: exactly equivariant by construction.

``pi_sym(o) = 1/G * sum_g P_g^-1 pi(T_g o)`` for a group of signed observation permutations ``T_g``
and action permutations ``P_g`` (each element its own inverse, as for reflections). When the
robot's dynamics are equivariant, the optimal policy is too, and averaging only removes the part of
a learned policy that breaks the symmetry (on the quadrotor: a steady offset to one side, see
``sim2real.quadrotor.symmetry``). Training is untouched; the average is what gets evaluated and deployed.

``folded()`` writes the average as one plain MLP (first layer with the group's permutations folded
into its weights, block-diagonal hidden layers, a final averaging layer), so ONNX export and the C
generator take it as they take any actor.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.ELU, nn.SiLU, nn.LeakyReLU)  # activations that commute with stacking the group


class GroupAveragedPolicy(nn.Module):
    """``actor``: obs (..., D) -> action (..., A) in [-1, 1], an ``nn.Sequential`` ``trunk`` squashed by tanh."""

    def __init__(self, actor: nn.Module, obs_index: np.ndarray, obs_sign: np.ndarray, action_index: np.ndarray):
        super().__init__()
        obs_index, obs_sign, action_index = np.asarray(obs_index), np.asarray(obs_sign), np.asarray(action_index)
        groups, obs_dim = obs_index.shape
        if obs_sign.shape != obs_index.shape or action_index.shape[0] != groups:
            raise ValueError(f"GroupAveragedPolicy: obs_index {obs_index.shape}, obs_sign {obs_sign.shape} and "
                             f"action_index {action_index.shape} must describe the same number of group elements.")
        for rows, size in ((obs_index, obs_dim), (action_index, action_index.shape[1])):
            if not all(np.array_equal(np.sort(row), np.arange(size)) for row in rows):
                raise ValueError("GroupAveragedPolicy: every index row must be a permutation.")
        self.actor = actor
        self.register_buffer("obs_index", torch.as_tensor(obs_index, dtype=torch.long), persistent=False)
        self.register_buffer("obs_sign", torch.as_tensor(obs_sign, dtype=torch.float32), persistent=False)
        self.register_buffer("action_index", torch.as_tensor(action_index, dtype=torch.long), persistent=False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        mapped = obs[..., self.obs_index] * self.obs_sign  # (..., G, D): one observation per group element
        actions = self.actor(mapped)  # (..., G, A)
        back = torch.gather(actions, -1, self.action_index.expand(actions.shape[:-2] + self.action_index.shape))
        return back.mean(dim=-2)

    @torch.no_grad()
    def folded(self) -> nn.Sequential:
        """The same function as one MLP: Linear, activation, ..., Linear, Tanh, Linear (the average)."""
        trunk = list(self.actor.trunk)
        linears = [i for i, layer in enumerate(trunk) if isinstance(layer, nn.Linear)]
        if linears[-1] != len(trunk) - 1 or not all(isinstance(layer, (nn.Linear, *ELEMENTWISE)) for layer in trunk):
            raise TypeError("GroupAveragedPolicy.folded: the actor's trunk must be Linear layers and elementwise "
                            "activations ending in a Linear layer.")
        groups = self.obs_index.shape[0]
        layers: list[nn.Module] = []
        for i, layer in enumerate(trunk):
            if not isinstance(layer, nn.Linear):
                layers.append(copy.deepcopy(layer))
                continue
            if i == linears[0]:  # (G*H, D): element g's block reads T_g obs, i.e. W[:, index_g] = W * sign_g
                blocks = []
                for g in range(groups):
                    block = torch.zeros_like(layer.weight)
                    block[:, self.obs_index[g]] = layer.weight * self.obs_sign[g]
                    blocks.append(block)
                weight = torch.cat(blocks)
            else:
                weight = torch.block_diag(*[layer.weight] * groups)
            out = nn.Linear(weight.shape[1], weight.shape[0])
            out.weight.copy_(weight)
            out.bias.copy_(layer.bias.repeat(groups))
            layers.append(out)
        layers.append(nn.Tanh())
        action_dim = self.action_index.shape[1]
        average = nn.Linear(groups * action_dim, action_dim, bias=False)
        average.weight.zero_()
        for g in range(groups):  # action[i] = mean_g a_g[P_g[i]]
            average.weight[torch.arange(action_dim), g * action_dim + self.action_index[g]] = 1.0 / groups
        layers.append(average)
        return nn.Sequential(*layers).eval()
