"""The small layer IR between an exported ONNX actor and generated C, with numpy semantics.

A lowered policy is a chain of ops on float32 vectors at batch 1: each op reads the previous op's
output (the first reads the observation) and the last one produces the action. `ReduceMean` and
`Binary` (two activations in, e.g. ``x * sigmoid(x)``) exist only between lowering and fusion:
`onnx_lowering` fuses them into `LayerNorm` / SiLU or refuses the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNARY_KINDS = ("relu", "tanh", "sigmoid", "elu", "leaky_relu", "silu", "softplus", "clip", "sqrt")
ARITHMETIC = ("add", "sub", "mul", "div")


@dataclass(kw_only=True)
class Op:
    inputs: tuple[str, ...]  # names of activation vectors
    output: str
    size: int  # length of the output vector
    onnx_op: str  # the ONNX op and node it came from, for error messages
    node: str

    def reference(self, x: np.ndarray) -> np.ndarray:
        """The op on one float32 vector, in numpy (chain ops only)."""
        raise NotImplementedError


@dataclass(kw_only=True)
class Linear(Op):
    weight: np.ndarray  # float32 [size, n_in], row-major like torch.nn.Linear.weight
    bias: np.ndarray  # float32 [size]

    def reference(self, x):
        return self.weight @ x + self.bias


@dataclass(kw_only=True)
class LayerNorm(Op):
    epsilon: float
    gamma: np.ndarray  # float32 [size]
    beta: np.ndarray  # float32 [size]

    def reference(self, x):
        centered = x - x.mean()
        return centered / np.sqrt((centered * centered).mean() + np.float32(self.epsilon)) * self.gamma + self.beta


@dataclass(kw_only=True)
class Unary(Op):
    kind: str  # one of UNARY_KINDS
    alpha: float = 0.0  # elu / leaky_relu
    low: float = -np.inf  # clip
    high: float = np.inf

    def reference(self, x):
        one = np.float32(1.0)
        if self.kind == "relu":
            return np.maximum(x, 0)
        if self.kind == "tanh":
            return np.tanh(x)
        if self.kind == "sigmoid":
            return one / (one + np.exp(-x))
        if self.kind == "silu":
            return x / (one + np.exp(-x))
        if self.kind == "elu":
            return np.where(x > 0, x, np.float32(self.alpha) * (np.exp(np.minimum(x, 0)) - one))
        if self.kind == "leaky_relu":
            return np.where(x >= 0, x, np.float32(self.alpha) * x)
        if self.kind == "softplus":
            return np.logaddexp(np.float32(0), x)
        if self.kind == "clip":
            return np.clip(x, np.float32(self.low), np.float32(self.high))
        return np.sqrt(x)


@dataclass(kw_only=True)
class ConstBinary(Op):
    """``x (op) c``, or ``c (op) x`` when `constant_first`; `constant` has `size` entries or one."""

    kind: str  # one of ARITHMETIC
    constant: np.ndarray  # float32
    constant_first: bool = False

    def reference(self, x):
        a, b = (self.constant, x) if self.constant_first else (x, self.constant)
        return _arithmetic(self.kind, a, b)


@dataclass(kw_only=True)
class Slice(Op):
    """``y[i] = x[start + i * step]`` for i < size: Slice, Split and Gather with constant indices."""

    start: int
    step: int

    def reference(self, x):
        return x[self.start + self.step * np.arange(self.size)]


@dataclass(kw_only=True)
class ReduceMean(Op):
    """Mean of the whole vector (size 1); fusion-only."""


@dataclass(kw_only=True)
class Binary(Op):
    """Elementwise op on two activations (a size-1 one broadcasts); fusion-only."""

    kind: str  # one of ARITHMETIC


def _arithmetic(kind: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[kind](a, b)


@dataclass
class LoweredPolicy:
    """An actor as a chain of ops: observation vector in, action vector out."""

    input_name: str  # the ONNX graph's input and output names
    input_shape: tuple[int, ...]  # at batch 1, as the ONNX graph expects it
    output_name: str
    n_obs: int
    n_act: int
    ops: list[Op]

    def reference(self, obs: np.ndarray) -> np.ndarray:
        """The action the chain computes for one observation, in float32 numpy."""
        x = np.asarray(obs, np.float32).reshape(self.n_obs)
        for op in self.ops:  # a chain: each op reads the previous output
            x = op.reference(x).astype(np.float32)
        return x
