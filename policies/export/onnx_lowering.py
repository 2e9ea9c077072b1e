"""Lower an exported ONNX actor (an MLP, run at batch 1) to the layer chain of `layer_ir`.

One walk over the graph with the batch fixed to 1: every value is either a constant (folded with
onnx's reference evaluator, so Shape/Gather/Concat arithmetic from the exporters disappears) or an
activation vector with a known shape. Ops that only move data (Reshape, Squeeze, Slice, Split, ...)
are run by the reference evaluator on an array of element indices, which turns them into a no-op
or a strided `Slice` with ONNX's exact semantics. Fusion passes then reduce the small DAG of layer
ops to a chain: LayerNorm and SiLU patterns, bias/affine folding, pruning of head rows nobody reads.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
import onnx.inliner
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

from policies.export.layer_ir import (Binary, ConstBinary, LayerNorm, Linear, LoweredPolicy, Op, ReduceMean,
                                      Slice, Unary)


class UnsupportedOnnxOp(ValueError):
    """The graph holds an op (or an op used in a way) the C generator cannot lower."""

    def __init__(self, op_type: str, node: str, reason: str):
        self.op_type, self.node = op_type, node
        super().__init__(f"ONNX op {op_type} (node '{node}') cannot be lowered to C: {reason}. Export the actor "
                         "without it, or add a lowering for it in policies/export/onnx_lowering.py.")


@dataclass(frozen=True)
class _Activation:
    """A value that depends on the observation: the name of the IR vector holding it, and its ONNX shape."""

    name: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


_LOWERINGS: dict[str, Callable[["_Node"], list]] = {}
# Ops that only reorder or relabel elements: lowered by running them on element indices.
_DATA_MOVES = ("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Slice", "Split",
               "Gather", "Concat", "Expand", "Tile")
_SHAPE_QUERIES = ("Shape", "Size")
_UNARY = {"Relu": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Elu": "elu", "LeakyRelu": "leaky_relu",
          "Softplus": "softplus", "Sqrt": "sqrt"}
_DEFAULT_ALPHA = {"Elu": 1.0, "LeakyRelu": 0.01}


def _lowers(*op_types: str):
    def register(fn):
        for op_type in op_types:
            _LOWERINGS[op_type] = fn
        return fn
    return register


def lower_onnx(model: onnx.ModelProto) -> LoweredPolicy:
    """The actor in `model` as a chain of layer ops; raises `UnsupportedOnnxOp` naming the op it cannot lower."""
    model = onnx.inliner.inline_local_functions(model)
    graph = model.graph
    opsets = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
    values: dict[str, object] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in values]
    if len(inputs) != 1:
        raise ValueError(f"the ONNX graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); the C "
                         "generator needs exactly one float observation input, so export a state-only actor.")
    if len(graph.output) != 1:
        raise ValueError(f"the ONNX graph has {len(graph.output)} outputs; the C generator needs exactly one "
                         "(the action), so export the deterministic actor alone.")
    obs = _Activation(inputs[0].name, _batch1_shape(inputs[0]))
    values[obs.name] = obs
    ops: list[Op] = []
    for index, node in enumerate(graph.node):
        _Node(node, node.name or f"{node.op_type}_{index}", values, ops, opsets).lower()

    action = values[graph.output[0].name]
    if not isinstance(action, _Activation):
        raise ValueError("the ONNX graph's output does not depend on its input; export the actor, not a constant.")
    chain = _to_chain(ops, obs.name, action.name)
    return LoweredPolicy(input_name=obs.name, input_shape=obs.shape, output_name=graph.output[0].name,
                         n_obs=obs.size, n_act=action.size, ops=chain)


def _batch1_shape(value_info: onnx.ValueInfoProto) -> tuple[int, ...]:
    tensor_type = value_info.type.tensor_type
    if tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError(f"input '{value_info.name}' is not float32; export the actor with a float32 observation.")
    shape = []
    for axis, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            shape.append(dim.dim_value)
        elif axis == 0:
            shape.append(1)  # the batch axis
        else:
            raise ValueError(f"input '{value_info.name}' has no fixed size on axis {axis}; export with a fixed "
                             "observation size.")
    if len(shape) > 1 and shape[0] != 1:
        raise ValueError(f"input '{value_info.name}' has a fixed batch of {shape[0]}; export with a dynamic or "
                         "size-1 batch axis.")
    return tuple(shape)


class _Node:
    """One ONNX node during the walk: its inputs resolved, and helpers for the lowering functions."""

    def __init__(self, node: onnx.NodeProto, name: str, values: dict, ops: list[Op], opsets: dict[str, int]):
        self.proto, self.name, self.op_type = node, name, node.op_type
        self.values, self.ops, self.opsets = values, ops, opsets
        self.attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        self.inputs = [self._lookup(n) if n else None for n in node.input]

    def lower(self) -> None:
        if not any(isinstance(v, _Activation) for v in self.inputs):
            results = self.fold(self.inputs)
        elif self.proto.domain not in ("", "ai.onnx"):
            raise self.unsupported(f"it is in the custom domain '{self.proto.domain}'")
        elif self.op_type in _DATA_MOVES:
            results = _move_data(self)
        elif self.op_type in _SHAPE_QUERIES:
            results = self.fold([np.zeros(v.shape, np.float32) if isinstance(v, _Activation) else v
                                 for v in self.inputs])
        elif self.op_type in _LOWERINGS:
            results = _LOWERINGS[self.op_type](self)
        else:
            raise self.unsupported("the C generator has no lowering for it")
        for name, value in zip(self.proto.output, results):
            if name:
                self.values[name] = value

    def _lookup(self, name: str):
        if name not in self.values:
            raise self.unsupported(f"its input '{name}' is an output the C generator does not produce")
        return self.values[name]

    def fold(self, inputs: list) -> list:
        feeds = {name: value for name, value in zip(self.proto.input, inputs) if name}
        try:
            return list(ReferenceEvaluator(self.proto, opsets=self.opsets).run(None, feeds))
        except Exception as error:  # the reference evaluator raises many kinds
            raise self.unsupported(f"folding it into a constant failed ({error})") from error

    def unsupported(self, reason: str) -> UnsupportedOnnxOp:
        return UnsupportedOnnxOp(self.op_type, self.name, reason)

    def attr(self, key: str, default=None):
        return self.attrs.get(key, default)

    def activation(self, index: int) -> _Activation:
        value = self.inputs[index] if index < len(self.inputs) else None
        if not isinstance(value, _Activation):
            raise self.unsupported(f"input {index} must depend on the observation")
        return value

    def constant(self, index: int, default=None) -> np.ndarray:
        value = self.inputs[index] if index < len(self.inputs) else None
        if value is None and default is not None:
            return np.asarray(default, np.float32)
        if not isinstance(value, np.ndarray):
            raise self.unsupported(f"input {index} must be a constant (weights baked into the graph)")
        return value

    def emit(self, op_class, inputs: tuple[_Activation, ...], shape: tuple[int, ...], output_index: int = 0,
             **params) -> _Activation:
        output = self.proto.output[output_index]
        size = int(np.prod(shape, dtype=np.int64))
        self.ops.append(op_class(inputs=tuple(x.name for x in inputs), output=output, size=size,
                                 onnx_op=self.op_type, node=self.name, **params))
        return _Activation(output, tuple(int(d) for d in shape))


def _move_data(n: _Node) -> list:
    """Run the data-movement op on element indices: each output is a relabelled input or a strided Slice."""
    activations = [v for v in n.inputs if isinstance(v, _Activation)]
    if len(activations) != 1:
        raise n.unsupported("it combines several activations")
    x = activations[0]
    others = [v for v in n.inputs if v is not x and v is not None]
    if n.op_type == "Concat" and any(v.size for v in others):
        raise n.unsupported("it concatenates the activation with constants")
    indices = np.arange(x.size, dtype=np.int64).reshape(x.shape)
    results = []
    for output_index, moved in enumerate(n.fold([indices if v is x else v for v in n.inputs])):
        flat = moved.reshape(-1)
        if np.array_equal(flat, np.arange(x.size)):
            results.append(_Activation(x.name, moved.shape))
            continue
        step = int(flat[1] - flat[0]) if flat.size > 1 else 1
        if flat.size == 0 or not np.array_equal(flat, flat[0] + step * np.arange(flat.size)):
            raise n.unsupported("it selects elements that are not evenly spaced")
        results.append(n.emit(Slice, (x,), moved.shape, output_index, start=int(flat[0]), step=step))
    return results


@_lowers("Dropout")
def _dropout(n: _Node) -> list:
    return [n.activation(0)]  # inference mode: the identity (a mask output, if read, is refused on use)


@_lowers("Cast")
def _cast(n: _Node) -> list:
    if n.attr("to") != onnx.TensorProto.FLOAT:
        raise n.unsupported("it casts the activation to a type other than float32")
    return [n.activation(0)]


@_lowers(*_UNARY)
def _unary(n: _Node) -> list:
    x = n.activation(0)
    alpha = float(n.attr("alpha", _DEFAULT_ALPHA.get(n.op_type, 0.0)))
    return [n.emit(Unary, (x,), x.shape, kind=_UNARY[n.op_type], alpha=alpha)]


@_lowers("Clip")
def _clip(n: _Node) -> list:
    x = n.activation(0)
    low = n.constant(1, default=n.attr("min", -np.inf))  # inputs since opset 11, attributes before
    high = n.constant(2, default=n.attr("max", np.inf))
    return [n.emit(Unary, (x,), x.shape, kind="clip", low=float(low), high=float(high))]


@_lowers("Reciprocal")
def _reciprocal(n: _Node) -> list:
    x = n.activation(0)
    return [n.emit(ConstBinary, (x,), x.shape, kind="div", constant=np.ones(1, np.float32), constant_first=True)]


@_lowers("Neg")
def _neg(n: _Node) -> list:
    x = n.activation(0)
    return [n.emit(ConstBinary, (x,), x.shape, kind="mul", constant=-np.ones(1, np.float32))]


@_lowers("Add", "Sub", "Mul", "Div")
def _arithmetic(n: _Node) -> list:
    kind = n.op_type.lower()
    a, b = n.inputs
    shape = np.broadcast_shapes(a.shape, b.shape)
    size = int(np.prod(shape, dtype=np.int64))
    if isinstance(a, _Activation) and isinstance(b, _Activation):
        if size != max(a.size, b.size) or min(a.size, b.size) not in (1, size):
            raise n.unsupported("its two activation operands broadcast to a larger tensor")
        return [n.emit(Binary, (a, b), shape, kind=kind)]
    x, constant, constant_first = (a, b, False) if isinstance(a, _Activation) else (b, a, True)
    if size != x.size:
        raise n.unsupported("its constant operand would enlarge the activation")
    values = np.broadcast_to(constant.astype(np.float32), shape).reshape(-1)
    if np.all(values == values[0]):
        values = values[:1]  # one scalar in C instead of an array
    return [n.emit(ConstBinary, (x,), shape, kind=kind, constant=values.copy(), constant_first=constant_first)]


@_lowers("Pow")
def _pow(n: _Node) -> list:
    x, exponent = n.activation(0), n.constant(1)
    if exponent.size == 1 and float(exponent.reshape(-1)[0]) == 2.0:
        return [n.emit(Binary, (x, x), x.shape, kind="mul")]
    if exponent.size == 1 and float(exponent.reshape(-1)[0]) == 0.5:
        return [n.emit(Unary, (x,), x.shape, kind="sqrt")]
    raise n.unsupported("only the exponents 2 and 0.5 are supported")


@_lowers("Gemm")
def _gemm(n: _Node) -> list:
    a, b = n.activation(0), n.constant(1)
    a_shape = a.shape[::-1] if n.attr("transA", 0) else a.shape
    weight = b if n.attr("transB", 0) else b.T  # -> [n_out, n_in]
    if len(a_shape) != 2 or a_shape[0] != 1 or weight.ndim != 2 or weight.shape[1] != a_shape[1]:
        raise n.unsupported(f"input A of shape {a.shape} is not one row matching B of shape {b.shape}")
    n_out = weight.shape[0]
    bias = np.broadcast_to(n.constant(2, default=0.0), (1, n_out)).reshape(n_out)
    return [n.emit(Linear, (a,), (1, n_out), weight=(np.float32(n.attr("alpha", 1.0)) * weight).astype(np.float32),
                   bias=(np.float32(n.attr("beta", 1.0)) * bias).astype(np.float32))]


@_lowers("MatMul")
def _matmul(n: _Node) -> list:
    x, w = n.activation(0), n.constant(1)
    if w.ndim != 2 or not x.shape or x.shape[-1] != w.shape[0] or any(d != 1 for d in x.shape[:-1]):
        raise n.unsupported(f"it multiplies an activation of shape {x.shape} by a constant of shape {w.shape}; "
                            "only vector times a 2-D weight matrix is supported")
    return [n.emit(Linear, (x,), x.shape[:-1] + (w.shape[1],), weight=np.ascontiguousarray(w.T, np.float32),
                   bias=np.zeros(w.shape[1], np.float32))]


@_lowers("LayerNormalization")
def _layer_norm(n: _Node) -> list:
    x = n.activation(0)
    axis = n.attr("axis", -1) % len(x.shape)
    if any(d != 1 for d in x.shape[:axis]):
        raise n.unsupported(f"it normalises several groups of the activation of shape {x.shape}")
    gamma = np.broadcast_to(n.constant(1), (x.size,)).astype(np.float32)
    beta = np.broadcast_to(n.constant(2, default=0.0), (x.size,)).astype(np.float32)
    return [n.emit(LayerNorm, (x,), x.shape, epsilon=float(n.attr("epsilon", 1e-5)), gamma=gamma, beta=beta)]


@_lowers("ReduceMean")
def _reduce_mean(n: _Node) -> list:
    x = n.activation(0)
    axes = n.attr("axes")  # an attribute before opset 18, an optional input since
    if axes is None and len(n.inputs) > 1 and n.inputs[1] is not None:
        axes = n.constant(1).reshape(-1).tolist()
    if not axes:
        if n.attr("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(len(x.shape)))
    shape = np.mean(np.zeros(x.shape), axis=tuple(axes), keepdims=bool(n.attr("keepdims", 1))).shape
    if int(np.prod(shape)) != 1:
        raise n.unsupported("only a mean over the whole vector (as in a LayerNorm) is supported")
    return [n.emit(ReduceMean, (x,), shape)]


# ---- from a DAG of ops to a chain -------------------------------------------------------------------------


def _to_chain(ops: list[Op], input_name: str, output_name: str) -> list[Op]:
    ops = _fuse_silu(ops)
    ops = _fuse_layer_norm(ops)
    ops = _fold_into_layers(_live(ops, output_name), output_name)
    current = input_name
    for op in ops:
        if op.inputs != (current,):
            if isinstance(op, (Binary, ReduceMean)):
                reason = "it combines activations outside a recognised LayerNorm or SiLU pattern"
            else:
                reason = "the graph branches here, and only a chain of layers can be lowered"
            raise UnsupportedOnnxOp(op.onnx_op, op.node, reason)
        current = op.output
    return ops


def _live(ops: list[Op], output_name: str) -> list[Op]:
    """The ops the output depends on, in order (drops e.g. the log-std half of a Gaussian head)."""
    needed, kept = {output_name}, []
    for op in reversed(ops):
        if op.output in needed:
            kept.append(op)
            needed.update(op.inputs)
    return kept[::-1]


def _fuse_silu(ops: list[Op]) -> list[Op]:
    """``x * sigmoid(x)`` -> one SiLU."""
    by_output = {op.output: op for op in ops}
    fused = []
    for op in ops:
        if isinstance(op, Binary) and op.kind == "mul":
            for x, gate_name in (op.inputs, op.inputs[::-1]):
                gate = by_output.get(gate_name)
                if isinstance(gate, Unary) and gate.kind == "sigmoid" and gate.inputs == (x,):
                    op = Unary(inputs=(x,), output=op.output, size=op.size, onnx_op="Mul(x, Sigmoid(x))",
                               node=op.node, kind="silu")
                    break
        fused.append(op)
    return fused


def _fuse_layer_norm(ops: list[Op]) -> list[Op]:
    """``(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps)`` -> one LayerNorm (scale and shift fold in later)."""
    by_output = {op.output: op for op in ops}
    fused = []
    for op in ops:
        match = _match_layer_norm(op, by_output)
        if match is not None:
            x, epsilon = match
            op = LayerNorm(inputs=(x,), output=op.output, size=op.size, onnx_op="LayerNorm pattern", node=op.node,
                           epsilon=epsilon, gamma=np.ones(op.size, np.float32), beta=np.zeros(op.size, np.float32))
        fused.append(op)
    return fused


def _match_layer_norm(op: Op, by_output: dict[str, Op]) -> tuple[str, float] | None:
    """(x, epsilon) when `op` is the normalising Div (or Mul by a reciprocal) of a LayerNorm decomposition."""
    if not isinstance(op, Binary) or op.kind not in ("div", "mul"):
        return None
    candidates = [op.inputs] if op.kind == "div" else [op.inputs, op.inputs[::-1]]
    for centered, denominator in candidates:
        if op.kind == "mul":  # x_c * (1 / std)
            reciprocal = by_output.get(denominator)
            if not (isinstance(reciprocal, ConstBinary) and reciprocal.kind == "div" and reciprocal.constant_first
                    and reciprocal.constant.size == 1 and reciprocal.constant[0] == 1.0):
                continue
            denominator = reciprocal.inputs[0]
        x = _centered_source(centered, by_output)
        sqrt = by_output.get(denominator)
        if x is None or not (isinstance(sqrt, Unary) and sqrt.kind == "sqrt"):
            continue
        add_eps = by_output.get(sqrt.inputs[0])
        if not (isinstance(add_eps, ConstBinary) and add_eps.kind == "add" and add_eps.constant.size == 1):
            continue
        variance = by_output.get(add_eps.inputs[0])
        square = by_output.get(variance.inputs[0]) if isinstance(variance, ReduceMean) else None
        if (isinstance(square, Binary) and square.kind == "mul"
                and all(_centered_source(name, by_output) == x for name in square.inputs)):
            return x, float(add_eps.constant[0])
    return None


def _centered_source(name: str, by_output: dict[str, Op]) -> str | None:
    """x when `name` holds ``x - mean(x)``."""
    sub = by_output.get(name)
    if not (isinstance(sub, Binary) and sub.kind == "sub"):
        return None
    x, mean = sub.inputs
    mean_op = by_output.get(mean)
    return x if isinstance(mean_op, ReduceMean) and mean_op.inputs == (x,) else None


def _fold_into_layers(ops: list[Op], output_name: str) -> list[Op]:
    """Fold a constant op into the layer that feeds only it: bias adds, LayerNorm affine, sliced heads."""
    while True:
        uses = Counter(name for op in ops for name in op.inputs)
        by_output = {op.output: op for op in ops}
        for consumer in ops:
            producer = by_output.get(consumer.inputs[0]) if len(consumer.inputs) == 1 else None
            if producer is None or uses[producer.output] != 1 or producer.output == output_name:
                continue
            merged = _merge(producer, consumer)
            if merged is not None:
                ops = [merged if op is producer else op for op in ops if op is not consumer]
                break
        else:
            return ops


def _merge(producer: Op, consumer: Op) -> Op | None:
    if isinstance(consumer, Slice) and isinstance(producer, Linear):
        rows = consumer.start + consumer.step * np.arange(consumer.size)
        return dataclasses.replace(producer, output=consumer.output, size=consumer.size,
                                   weight=producer.weight[rows], bias=producer.bias[rows])
    if not isinstance(consumer, ConstBinary) or (consumer.constant_first and consumer.kind in ("sub", "div")):
        return None
    c = np.broadcast_to(consumer.constant, (consumer.size,)).astype(np.float32)
    if isinstance(producer, Linear) and consumer.kind in ("add", "sub"):
        bias = producer.bias + c if consumer.kind == "add" else producer.bias - c
        return dataclasses.replace(producer, output=consumer.output, bias=bias)
    if isinstance(producer, LayerNorm):
        gamma, beta = producer.gamma, producer.beta
        if consumer.kind in ("add", "sub"):
            beta = beta + c if consumer.kind == "add" else beta - c
        else:
            gamma, beta = (gamma * c, beta * c) if consumer.kind == "mul" else (gamma / c, beta / c)
        return dataclasses.replace(producer, output=consumer.output, gamma=gamma, beta=beta)
    return None
