"""TensorRT engines (FP32 and FP16) built from an exported ONNX file, cached, checked against onnxruntime.

The cache key is (TensorRT version, GPU name, ONNX content hash, precision): an engine is only valid
for the TensorRT build and the GPU that made it. ``tensorrt`` and CUDA (through torch) are imported
lazily, so this module imports on any machine; without them ``build_engines`` raises
``TensorRTUnavailable`` with one sentence saying what to do.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

from policies.export.onnx_export import ExportError, make_session, read_spec

PRECISIONS = ("fp32", "fp16")
MAX_BATCH = 64
WORKSPACE_BYTES = 1 << 30
DEFAULT_CACHE = Path(os.environ.get("ROBOT_RL_TRT_CACHE", Path.home() / ".cache" / "robot_rl" / "tensorrt"))


class TensorRTUnavailable(ExportError):
    """TensorRT or a CUDA GPU is missing on this machine."""


def require_tensorrt():
    """(tensorrt module, torch with CUDA, GPU name) or one clear sentence saying what is missing."""
    try:
        import tensorrt as trt
    except ImportError:
        raise TensorRTUnavailable("TensorRT is not installed: run the tensorrt export on the target machine with an "
                                  "NVIDIA GPU after `pip install tensorrt`, or use --format onnx.") from None
    import torch

    if not torch.cuda.is_available():
        raise TensorRTUnavailable("no CUDA GPU is visible (torch.cuda.is_available() is False): build TensorRT "
                                  "engines on the GPU that will run them, or use --format onnx.")
    return trt, torch, torch.cuda.get_device_name(0)


def cache_key(trt_version: str, gpu_name: str, onnx_sha256: str, precision: str) -> str:
    return hashlib.sha256(f"{trt_version}|{gpu_name}|{onnx_sha256}|{precision}".encode()).hexdigest()[:32]


def _build(trt, onnx_path: Path, precision: str, logger) -> bytes:
    builder = trt.Builder(logger)
    explicit = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if hasattr(
        trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") else 0
    network = builder.create_network(explicit)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):  # dynamic batch: tuned for batch 1, valid up to MAX_BATCH
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (1, *rest), (MAX_BATCH, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT could not build a {precision} engine from {onnx_path}; its log above says why.")
    return bytes(serialized)


class TensorRTPolicy:
    """Runs a serialized engine on CUDA tensors owned by torch (no pycuda); batch of observations in, actions out."""

    def __init__(self, engine_path: str | Path):
        trt, torch, _ = require_tensorrt()
        self.torch = torch
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(Path(engine_path).read_bytes())
        self.context = self.engine.create_execution_context()
        self.names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in self.names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.stream = torch.cuda.Stream()

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        torch = self.torch
        batch = len(next(iter(feeds.values())))
        keep = {}
        for name in self.inputs:
            keep[name] = torch.from_numpy(np.ascontiguousarray(feeds[name])).cuda()
            self.context.set_input_shape(name, tuple(keep[name].shape))
            self.context.set_tensor_address(name, keep[name].data_ptr())
        action = torch.empty(tuple(self.context.get_tensor_shape("action")), dtype=torch.float32, device="cuda")
        self.context.set_tensor_address("action", action.data_ptr())
        with torch.cuda.stream(self.stream):
            self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return action.cpu().numpy()[:batch]


def build_engines(onnx_path: str | Path, out_dir: str | Path, parity_feeds: dict[str, np.ndarray],
                  precisions=PRECISIONS, cache_dir: str | Path = DEFAULT_CACHE) -> dict:
    """Build (or take from the cache) one engine per precision; report each one's parity with onnxruntime."""
    trt, _torch, gpu_name = require_tensorrt()
    onnx_path, out_dir, cache_dir = Path(onnx_path), Path(out_dir), Path(cache_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    onnx_sha256 = read_spec(onnx_path)["sha256"]
    session = make_session(onnx_path)
    reference = session.run(["action"], {i.name: parity_feeds[i.name] for i in session.get_inputs()})[0]
    logger = trt.Logger(trt.Logger.WARNING)
    result = {"tensorrt_version": trt.__version__, "gpu": gpu_name, "onnx_sha256": onnx_sha256, "engines": {}}
    for precision in precisions:
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}.")
        key = cache_key(trt.__version__, gpu_name, onnx_sha256, precision)
        cached = cache_dir / f"{key}.engine"
        hit = cached.exists()
        if not hit:
            tmp = cached.with_name(cached.name + ".tmp")
            tmp.write_bytes(_build(trt, onnx_path, precision, logger))
            tmp.replace(cached)
        engine_path = out_dir / f"policy_{precision}.engine"
        shutil.copyfile(cached, engine_path)
        actions = TensorRTPolicy(engine_path)(parity_feeds)
        result["engines"][precision] = {"path": str(engine_path), "cache_key": key, "cache_hit": hit,
                                        "parity_vs_onnxruntime_max_abs_err": float(np.max(np.abs(actions - reference)))}
    return result
