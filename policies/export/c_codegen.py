"""Generate C99 for a microcontroller from an exported ONNX actor.

`generate_c` writes `<prefix>.h` and `<prefix>.c`: ``<prefix>_forward(obs, action)`` at batch 1 with
every weight in a ``static const`` array (flash / .rodata), two static scratch vectors (no malloc),
float math only, the SHA-256 of the ONNX file, and a golden observation/action pair computed by
onnxruntime at generation time, which ``<prefix>_self_test(tolerance)`` replays on the target.
With ``weights="int8"`` each Linear weight row is quantised to symmetric int8 with one float scale
(activations and biases stay float), for about a quarter of the flash.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx

from policies.export.layer_ir import ConstBinary, LayerNorm, Linear, LoweredPolicy, Op, Slice, Unary
from policies.export.onnx_lowering import UnsupportedOnnxOp, lower_onnx

__all__ = ["GeneratedC", "UnsupportedOnnxOp", "generate_c", "golden_observation"]

WEIGHT_FORMATS = ("float32", "int8")
# Lowering and onnxruntime agree to ~1e-6 on our actors; a gap this large means a lowering bug.
_LOWERING_CHECK_TOLERANCE = 1e-4


class GeneratedC(NamedTuple):
    header: Path
    source: Path


def generate_c(onnx_path: str | Path, out_dir: str | Path, *, weights: str = "float32",
               prefix: str = "policy") -> GeneratedC:
    """Write ``<prefix>.h`` and ``<prefix>.c`` for the actor in `onnx_path`; returns their paths."""
    if weights not in WEIGHT_FORMATS:
        raise ValueError(f"weights={weights!r} is not one of {WEIGHT_FORMATS}; pick float32 or int8.")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
        raise ValueError(f"prefix={prefix!r} is not a C identifier; use letters, digits and underscores.")
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path} does not exist; export the actor to ONNX first or fix the path.")
    sha256 = hashlib.sha256(onnx_path.read_bytes()).hexdigest()
    policy = lower_onnx(onnx.load(str(onnx_path)))

    golden_obs = golden_observation(policy)
    golden_action = _onnxruntime_action(onnx_path, policy, golden_obs)
    lowering_error = float(np.max(np.abs(policy.reference(golden_obs) - golden_action), initial=0.0))
    if not lowering_error <= _LOWERING_CHECK_TOLERANCE:
        raise RuntimeError(f"the lowered layers differ from onnxruntime by {lowering_error:.3g} on the golden input; "
                           "this is a bug in policies/export/onnx_lowering.py, report it with the ONNX file.")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header, source = out_dir / f"{prefix}.h", out_dir / f"{prefix}.c"
    model_name = _comment_safe(onnx_path.name)
    header.write_text(_header_text(policy, prefix, sha256, weights, model_name))
    source.write_text(_source_text(policy, prefix, weights, golden_obs, golden_action, model_name))
    return GeneratedC(header, source)


def golden_observation(policy: LoweredPolicy, seed: int = 0) -> np.ndarray:
    """An in-distribution observation: standard normal after the graph's leading input normalisation."""
    gain, offset = _input_normalisation(policy)
    z = np.random.default_rng(seed).standard_normal(policy.n_obs)
    return ((z - offset) / gain).astype(np.float32)


def _input_normalisation(policy: LoweredPolicy) -> tuple[np.ndarray, np.ndarray]:
    """(gain, offset) such that the leading constant ops compute ``gain * obs + offset``."""
    gain, offset = np.ones(policy.n_obs), np.zeros(policy.n_obs)
    for op in policy.ops:
        if not isinstance(op, ConstBinary) or op.size != policy.n_obs or (op.constant_first and op.kind == "div"):
            break
        c = np.broadcast_to(op.constant.astype(np.float64), (op.size,))
        if op.kind == "add":
            offset = offset + c
        elif op.kind == "sub":
            gain, offset = (-gain, c - offset) if op.constant_first else (gain, offset - c)
        elif op.kind == "mul":
            gain, offset = gain * c, offset * c
        else:
            gain, offset = gain / c, offset / c
    if not np.all(np.isfinite(gain) & (gain != 0) & np.isfinite(offset)):
        return np.ones(policy.n_obs), np.zeros(policy.n_obs)
    return gain, offset


def _onnxruntime_action(onnx_path: Path, policy: LoweredPolicy, obs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    (action,) = session.run([policy.output_name], {policy.input_name: obs.reshape(policy.input_shape)})
    return np.asarray(action, np.float32).reshape(-1)


def diagonal_blocks(weight: np.ndarray) -> int:
    """The largest k such that ``weight`` is block-diagonal with k equal blocks and exact zeros elsewhere (1: dense)."""
    rows, cols = weight.shape
    for k in range(math.gcd(rows, cols), 1, -1):
        if rows % k or cols % k:
            continue
        r, c = rows // k, cols // k
        mask = np.kron(np.eye(k, dtype=bool), np.ones((r, c), dtype=bool))
        if not weight[~mask].any():
            return k
    return 1


def quantize_rows(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output row: ``weight ~= q * scale[:, None]`` with q in [-127, 127]."""
    max_abs = np.abs(weight).max(axis=1)
    scale = np.where(max_abs > 0, max_abs / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int8)
    return q, scale


# ---- C text ----------------------------------------------------------------------------------------------

_LINEAR_F32 = """\
/* y = W x + b, W row-major [n_out][n_in] as in torch.nn.Linear. Four partial sums keep the FPU
   pipeline busy instead of waiting on one running sum. */
static void linear(const float *restrict w, const float *restrict b, const float *restrict x,
                   float *restrict y, int n_in, int n_out)
{
    for (int o = 0; o < n_out; ++o) {
        const float *restrict row = w + o * n_in;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int i = 0;
        for (; i + 4 <= n_in; i += 4) {
            s0 += row[i] * x[i];
            s1 += row[i + 1] * x[i + 1];
            s2 += row[i + 2] * x[i + 2];
            s3 += row[i + 3] * x[i + 3];
        }
        for (; i < n_in; ++i) {
            s0 += row[i] * x[i];
        }
        y[o] = b[o] + ((s0 + s1) + (s2 + s3));
    }
}
"""

_LINEAR_INT8 = """\
/* y = diag(scale) Q x + b, Q int8 row-major [n_out][n_in] with one float scale per output row;
   activations stay float. Four partial sums keep the FPU pipeline busy. */
static void linear_int8(const int8_t *restrict q, const float *restrict scale, const float *restrict b,
                        const float *restrict x, float *restrict y, int n_in, int n_out)
{
    for (int o = 0; o < n_out; ++o) {
        const int8_t *restrict row = q + o * n_in;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        int i = 0;
        for (; i + 4 <= n_in; i += 4) {
            s0 += (float)row[i] * x[i];
            s1 += (float)row[i + 1] * x[i + 1];
            s2 += (float)row[i + 2] * x[i + 2];
            s3 += (float)row[i + 3] * x[i + 3];
        }
        for (; i < n_in; ++i) {
            s0 += (float)row[i] * x[i];
        }
        y[o] = b[o] + scale[o] * ((s0 + s1) + (s2 + s3));
    }
}
"""

_LAYER_NORM = """\
/* (x - mean) / sqrt(var + epsilon) * gamma + beta over the whole vector; x == y is fine. */
static void layer_norm(const float *x, float *y, const float *gamma, const float *beta, float epsilon, int n)
{
    float sum = 0.0f;
    for (int i = 0; i < n; ++i) {
        sum += x[i];
    }
    const float mean = sum / (float)n;
    float square_sum = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float d = x[i] - mean;
        square_sum += d * d;
    }
    const float inv_std = 1.0f / sqrtf(square_sum / (float)n + epsilon);
    for (int i = 0; i < n; ++i) {
        y[i] = (x[i] - mean) * inv_std * gamma[i] + beta[i];
    }
}
"""

_OPERATORS = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


def _header_text(policy: LoweredPolicy, prefix: str, sha256: str, weights: str, model_name: str) -> str:
    macro = prefix.upper()
    return f"""\
/* Generated by policies/export/c_codegen.py from {model_name}; do not edit. */
#ifndef {macro}_H
#define {macro}_H

#define {macro}_N_OBS {policy.n_obs}
#define {macro}_N_ACT {policy.n_act}
#define {macro}_MODEL_SHA256 "{sha256}"
#define {macro}_WEIGHTS "{weights}"

#ifdef __cplusplus
extern "C" {{
#endif

/* SHA-256 of the ONNX file this code was generated from. */
extern const char {prefix}_model_sha256[];

/* One action from one observation (batch 1). Not reentrant: it uses static scratch buffers.
   obs and action must not overlap. */
void {prefix}_forward(const float obs[{macro}_N_OBS], float action[{macro}_N_ACT]);

/* Runs the embedded golden observation and returns 0 when every action component is within
   tolerance of onnxruntime's (the float model's, also for int8 weights), 1 otherwise. */
int {prefix}_self_test(float tolerance);

#ifdef __cplusplus
}}
#endif

#endif /* {macro}_H */
"""


def _source_text(policy: LoweredPolicy, prefix: str, weights: str, golden_obs: np.ndarray,
                 golden_action: np.ndarray, model_name: str) -> str:
    macro = prefix.upper()
    declarations, body, helpers = [], [], []
    plan = _buffer_plan(policy.ops)
    for index, (op, (src, dst)) in enumerate(zip(policy.ops, plan)):
        arrays, lines, helper = _emit_op(op, f"op{index}", src, dst, weights)
        declarations += arrays
        body.append(f"    /* {index}: {_describe(op)} */")
        body += [f"    {line}" for line in lines]
        if helper and helper not in helpers:
            helpers.append(helper)
    if not policy.ops:
        body.append(f"    for (int i = 0; i < {macro}_N_ACT; ++i) action[i] = obs[i];")
    scratch_size = max((op.size for op in policy.ops[:-1]), default=0)
    scratch = [f"static float {name}[{scratch_size}];"
               for name in ("scratch_a", "scratch_b") if any(name in pair for pair in plan)]
    includes = ["#include <math.h>"] + (["#include <stdint.h>"] if weights == "int8" else [])

    parts = [
        f"/* Generated by policies/export/c_codegen.py from {model_name} ({weights} weights); do not edit.\n"
        + "".join(f"   {index}: {_describe(op)}\n" for index, op in enumerate(policy.ops)) + "*/",
        f'#include "{prefix}.h"\n\n' + "\n".join(includes),
        f"const char {prefix}_model_sha256[] = {macro}_MODEL_SHA256;",
        *declarations,
        "/* onnxruntime's action for golden_obs, computed when this file was generated. */\n"
        + _float_array("golden_obs", golden_obs) + "\n" + _float_array("golden_action", golden_action),
        "/* Ping-pong activations, sized to the widest intermediate layer. */\n" + "\n".join(scratch)
        if scratch else "",
        *helpers,
        f"void {prefix}_forward(const float obs[{macro}_N_OBS], float action[{macro}_N_ACT])\n{{\n"
        + "\n".join(body) + "\n}",
        f"""\
int {prefix}_self_test(float tolerance)
{{
    float action[{macro}_N_ACT];
    {prefix}_forward(golden_obs, action);
    for (int i = 0; i < {macro}_N_ACT; ++i) {{
        /* written so that a NaN fails */
        if (!(fabsf(action[i] - golden_action[i]) <= tolerance)) {{
            return 1;
        }}
    }}
    return 0;
}}""",
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _buffer_plan(ops: list[Op]) -> list[tuple[str, str]]:
    """(source, destination) per op: elementwise ops run in place, Linear/Slice switch scratch buffers."""
    plan, src = [], "obs"
    for index, op in enumerate(ops):
        if index == len(ops) - 1:
            dst = "action"
        elif isinstance(op, (Linear, Slice)) or src == "obs":
            dst = "scratch_b" if src == "scratch_a" else "scratch_a"
        else:
            dst = src
        plan.append((src, dst))
        src = dst
    return plan


def _describe(op: Op) -> str:
    if isinstance(op, Linear):
        blocks = diagonal_blocks(op.weight)
        what = f"Linear {op.weight.shape[1]} -> {op.size}" + (f" as {blocks} diagonal blocks" if blocks > 1 else "")
    elif isinstance(op, LayerNorm):
        what = f"LayerNorm {op.size}"
    elif isinstance(op, (Unary, ConstBinary)):
        what = f"{op.kind} {op.size}"
    else:
        what = f"{type(op).__name__} {op.size}"
    return _comment_safe(f"{what} [{op.onnx_op} '{op.node}']")


def _comment_safe(text: str) -> str:
    """ONNX names are free text; keep them from ending a C comment or spanning lines."""
    return text.replace("*/", "* /").replace("\n", " ")


def _emit_op(op: Op, name: str, src: str, dst: str, weights: str) -> tuple[list[str], list[str], str | None]:
    """(array declarations, statements, helper function or None) for one op."""
    n = op.size
    if isinstance(op, Linear):
        blocks = diagonal_blocks(op.weight)
        rows, cols = n // blocks, op.weight.shape[1] // blocks
        arrays, calls = [_float_array(f"{name}_bias", op.bias)], []
        for k in range(blocks):  # a block-diagonal layer (e.g. a group-averaged policy) stores and multiplies its blocks only
            block = op.weight[k * rows:(k + 1) * rows, k * cols:(k + 1) * cols]
            label = name if blocks == 1 else f"{name}_block{k}"
            at = "" if blocks == 1 else f" + {k * cols}"
            out, bias = ("" if blocks == 1 else f" + {k * rows}",) * 2
            if weights == "int8":
                q, scale = quantize_rows(block)
                arrays += [_int8_matrix(f"{label}_weight", q), _float_array(f"{label}_scale", scale)]
                calls.append(f"linear_int8(&{label}_weight[0][0], {label}_scale, {name}_bias{bias}, {src}{at}, {dst}{out}, "
                             f"{cols}, {rows});")
            else:
                arrays.append(_float_matrix(f"{label}_weight", block))
                calls.append(f"linear(&{label}_weight[0][0], {name}_bias{bias}, {src}{at}, {dst}{out}, {cols}, {rows});")
        return arrays, calls, _LINEAR_INT8 if weights == "int8" else _LINEAR_F32
    if isinstance(op, LayerNorm):
        arrays = [_float_array(f"{name}_gamma", op.gamma), _float_array(f"{name}_beta", op.beta)]
        call = f"layer_norm({src}, {dst}, {name}_gamma, {name}_beta, {_c_float(op.epsilon)}, {n});"
        return arrays, [call], _LAYER_NORM
    if isinstance(op, ConstBinary):
        arrays, c = [], _c_float(op.constant[0])
        if op.constant.size > 1:
            arrays, c = [_float_array(f"{name}_constant", op.constant)], f"{name}_constant[i]"
        a, b = (c, "v") if op.constant_first else ("v", c)
        return arrays, _elementwise(src, dst, n, f"{a} {_OPERATORS[op.kind]} {b}"), None
    if isinstance(op, Unary):
        return [], _elementwise(src, dst, n, _unary_expression(op)), None
    if isinstance(op, Slice):
        return [], [f"for (int i = 0; i < {n}; ++i) {dst}[i] = {src}[{op.start} + ({op.step}) * i];"], None
    raise UnsupportedOnnxOp(op.onnx_op, op.node, f"the C emitter has no code for {type(op).__name__}")


def _elementwise(src: str, dst: str, n: int, expression: str) -> list[str]:
    return [f"for (int i = 0; i < {n}; ++i) {{", f"    const float v = {src}[i];",
            f"    {dst}[i] = {expression};", "}"]


def _unary_expression(op: Unary) -> str:
    alpha = _c_float(op.alpha)
    if op.kind == "clip":
        expression = "v"
        if math.isfinite(op.low):
            expression = f"({expression} < {_c_float(op.low)} ? {_c_float(op.low)} : {expression})"
        if math.isfinite(op.high):
            expression = f"({expression} > {_c_float(op.high)} ? {_c_float(op.high)} : {expression})"
        return expression
    return {
        "relu": "v > 0.0f ? v : 0.0f",
        "tanh": "tanhf(v)",
        "sigmoid": "1.0f / (1.0f + expf(-v))",
        "silu": "v / (1.0f + expf(-v))",
        "elu": f"v > 0.0f ? v : {alpha} * (expf(v) - 1.0f)",
        "leaky_relu": f"v >= 0.0f ? v : {alpha} * v",
        "softplus": "v > 20.0f ? v : log1pf(expf(v))",  # above 20, log1p(e^v) == v in float
        "sqrt": "sqrtf(v)",
    }[op.kind]


def _c_float(value: float) -> str:
    value = float(np.float32(value))
    if not math.isfinite(value):
        raise ValueError(f"the actor holds a non-finite constant ({value}); re-export a checkpoint with finite weights.")
    text = f"{value:.9g}"  # 9 significant digits round-trip every float32
    return (text if any(c in text for c in ".e") else text + ".0") + "f"


def _rows(items: list[str], per_line: int, indent: str) -> str:
    return ",\n".join(indent + ", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))


def _float_array(name: str, values: np.ndarray) -> str:
    items = [_c_float(v) for v in np.asarray(values).reshape(-1)]
    return f"static const float {name}[{len(items)}] = {{\n{_rows(items, 8, '    ')}\n}};"


def _float_matrix(name: str, matrix: np.ndarray) -> str:
    rows = [f"    {{\n{_rows([_c_float(v) for v in row], 8, '        ')}\n    }}" for row in matrix]
    return f"static const float {name}[{matrix.shape[0]}][{matrix.shape[1]}] = {{\n" + ",\n".join(rows) + "\n};"


def _int8_matrix(name: str, matrix: np.ndarray) -> str:
    rows = [f"    {{{', '.join(str(int(v)) for v in row)}}}" for row in matrix]
    return f"static const int8_t {name}[{matrix.shape[0]}][{matrix.shape[1]}] = {{\n" + ",\n".join(rows) + "\n};"
