"""Discrete regression of rewards and values (TD-MPC2, Hansen et al. 2024): symlog space, two-hot targets.

A scalar y becomes ``symlog(y)``, placed on ``num_bins`` evenly spaced bins over [vmin, vmax] as a
two-hot vector (weights on the two nearest bins, linear in the distance), so that the expectation
over the bins gives back ``symlog(y)`` exactly inside the range. Heads output logits over the bins
and are trained with cross-entropy against the two-hot target; decoding is the softmax expectation
mapped back with ``symexp``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


@dataclass(frozen=True)
class TwoHot:
    num_bins: int = 101  # TD-MPC2
    vmin: float = -10.0  # symlog space (TD-MPC2)
    vmax: float = 10.0

    @property
    def bin_size(self) -> float:
        return (self.vmax - self.vmin) / (self.num_bins - 1)

    def bins(self, device=None) -> torch.Tensor:
        return torch.linspace(self.vmin, self.vmax, self.num_bins, device=device)

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        """Scalars [...] -> two-hot probabilities [..., num_bins] over symlog(y) (clipped to the range)."""
        x = symlog(y).clamp(self.vmin, self.vmax)
        position = (x - self.vmin) / self.bin_size
        low = position.floor().clamp(max=self.num_bins - 2)
        upper_weight = (position - low).unsqueeze(-1)
        low = low.long().unsqueeze(-1)
        out = torch.zeros(*y.shape, self.num_bins, dtype=y.dtype, device=y.device)
        out.scatter_(-1, low, 1.0 - upper_weight)
        out.scatter_add_(-1, low + 1, upper_weight)
        return out

    def decode_probs(self, probs: torch.Tensor) -> torch.Tensor:
        """Probabilities [..., num_bins] -> scalars [...]."""
        return symexp((probs * self.bins(probs.device)).sum(-1))

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits [..., num_bins] -> scalars [...] (softmax expectation in symlog space)."""
        return self.decode_probs(F.softmax(logits, dim=-1))

    def cross_entropy(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-element cross-entropy of ``logits`` [..., num_bins] against the two-hot target of ``y`` [...]."""
        return -(self.encode(y) * F.log_softmax(logits, dim=-1)).sum(-1)
