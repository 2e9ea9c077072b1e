"""Export a deterministic policy to one self-contained ONNX file with its spec embedded.

Inputs: ``state`` float32 [batch, S] and one uint8 [batch, H, W, 3] input per camera; output
``action`` float32 [batch, A] in the environment's units. The metadata holds the observation
and action layout, normalization, control rate, policy version, training run and a content
hash. A parity check against the torch policy runs at export and fails it if it does not hold.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

OPSET = 17
SPEC_KEY = "robot_rl.spec"
HASH_KEY = "robot_rl.content_sha256"


class ExportError(RuntimeError):
    """The export could not be produced or did not match the torch policy."""


class _PositionalPolicy(nn.Module):
    def __init__(self, policy: nn.Module, image_keys: list[str]):
        super().__init__()
        self.policy, self.image_keys = policy, image_keys

    def forward(self, state, *images):
        obs = {"state": state, **dict(zip(self.image_keys, images))}
        return self.policy(obs)


def content_hash(model: onnx.ModelProto) -> str:
    """SHA-256 over the graph (weights included), independent of the metadata that carries it."""
    return hashlib.sha256(model.graph.SerializeToString(deterministic=True)).hexdigest()


def export_onnx(policy: nn.Module, spec: dict, path: str | Path, parity_obs: dict[str, np.ndarray],
                tolerance: float = 1e-5) -> dict:
    """Write ``path`` and return ``{"path", "sha256", "parity_max_abs_err", "parity_samples"}``.

    ``spec`` is embedded as JSON; it must hold ``obs_spec`` (``ObsSpec.to_dict()``) and may hold
    anything else worth knowing at deployment (layouts, rate, version, run).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image_keys = list(spec["obs_spec"]["image_shapes"])
    wrapper = _PositionalPolicy(policy.eval(), image_keys).eval()
    example = [torch.from_numpy(np.ascontiguousarray(parity_obs["state"][:2]))]
    example += [torch.from_numpy(np.ascontiguousarray(parity_obs[k][:2])) for k in image_keys]
    input_names = ["state", *image_keys]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, tuple(example), buffer, input_names=input_names, output_names=["action"],
            dynamic_axes={name: {0: "batch"} for name in [*input_names, "action"]},
            opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    digest = content_hash(model)
    meta = {SPEC_KEY: json.dumps({**spec, "opset": OPSET}, sort_keys=True), HASH_KEY: digest}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = path.with_name(path.name + ".tmp")
    onnx.save_model(model, str(tmp), save_as_external_data=False)
    tmp.replace(path)

    error = parity_error(policy, path, parity_obs)
    if not error <= tolerance:  # also catches NaN
        path.rename(path.with_name(path.name + ".failed"))
        raise ExportError(f"ONNX parity check failed: max abs error {error:.3g} > {tolerance:g}; export kept as *.failed")
    return {"path": str(path), "sha256": digest, "parity_max_abs_err": float(error),
            "parity_samples": int(len(parity_obs["state"]))}


def make_session(path: str | Path, threads: int = 1):
    """An onnxruntime session tuned for batch-1 latency on a small CPU: explicit threads, full optimization."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def parity_error(policy: nn.Module, path: str | Path, obs: dict[str, np.ndarray]) -> float:
    session = make_session(path)
    feeds = {i.name: np.ascontiguousarray(obs[i.name]) for i in session.get_inputs()}
    onnx_out = session.run(["action"], feeds)[0]
    with torch.no_grad():
        torch_out = policy({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in obs.items()}).numpy()
    return float(np.max(np.abs(onnx_out - torch_out)))


def read_spec(path: str | Path) -> dict:
    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in model.metadata_props}
    if SPEC_KEY not in props:
        raise ExportError(f"{path} has no robot_rl spec in its metadata; it was not exported by robot-rl export")
    spec = json.loads(props[SPEC_KEY])
    spec["sha256"] = props.get(HASH_KEY)
    return spec


class OnnxPolicy:
    """Runs an exported policy on one observation dict; returns the action in env units."""

    def __init__(self, path: str | Path, threads: int = 1):
        self.session = make_session(path, threads)
        self.spec = read_spec(path)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        feeds = {name: np.ascontiguousarray(obs[name])[None] for name in self.input_names}
        return self.session.run(["action"], feeds)[0][0]
