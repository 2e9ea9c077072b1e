"""Batch-1 policy latency: torch eager vs onnxruntime (tuned runner backend) vs the generated C on the host.

Models go through the real export path (``policies.networks`` actor -> ``export_onnx`` with its parity
check -> ``generate_c``): the pick-cube actor (13 -> 256 -> 256 -> 4, LayerNorm + ReLU, as in
launch/sim_pick_cube.yaml) and a 64x64 MLP (the Learning-to-Fly shape 146 -> 64 -> 64 -> 4, "_64x64" keys).
torch: eager, no_grad, 1 thread, called with the observation dict. onnxruntime: ``OrtBackend`` as the
deploy runner uses it (1 thread, ORT_ENABLE_ALL, preallocated I/O binding). C: the compiled harness of
bench/c_inference.py (clock_gettime per call, no Python in the timed path). Calls run back to back;
``--realtime`` times under SCHED_FIFO where permitted. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from c_inference import realtime_permitted, time_c, timing_priority  # noqa: E402

from policies.export.onnx_export import export_onnx  # noqa: E402
from policies.networks import DeterministicPolicy, ObsEncoder, TanhGaussianActor  # noqa: E402
from policies.runtime.backends import OrtBackend  # noqa: E402

torch.set_num_threads(1)
ORT_CALLS, TORCH_CALLS, N_INPUTS = 5000, 2000, 64
MODELS = {  # name: (state dim, hidden widths, action dim, LayerNorm)
    "pick_cube": (13, [256, 256], 4, True),
    "64x64": (146, [64, 64], 4, False),
}


def make_policy(state_dim: int, hidden: list[int], action_dim: int, layer_norm: bool) -> DeterministicPolicy:
    encoder = ObsEncoder(state_dim, {}, [], 0)
    actor = TanhGaussianActor(encoder.output_dim, action_dim, hidden, layer_norm)
    low, high = -np.ones(action_dim, np.float32), np.ones(action_dim, np.float32)
    return DeterministicPolicy(encoder, actor, low, high).eval()


def percentiles_us(samples_ns) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(samples_ns, np.float64), [50, 99]) / 1e3
    return round(float(p50), 2), round(float(p99), 2)


def time_calls(call, inputs: list, calls: int, realtime: bool) -> tuple[float, float]:
    for x in inputs * 10:
        call(x)
    samples = []
    with timing_priority(realtime):
        for i in range(calls):
            start = time.perf_counter_ns()
            call(inputs[i % len(inputs)])
            samples.append(time.perf_counter_ns() - start)
    return percentiles_us(samples)


def measure(name: str, workdir: Path, realtime: bool) -> dict:
    state_dim, hidden, action_dim, layer_norm = MODELS[name]
    torch.manual_seed(0)
    policy = make_policy(state_dim, hidden, action_dim, layer_norm)
    states = np.random.default_rng(0).standard_normal((N_INPUTS, state_dim)).astype(np.float32)
    spec = {"obs_spec": {"state_dim": state_dim, "image_shapes": {}, "state_keys": []}, "action_dim": action_dim}
    onnx_path = workdir / f"{name}.onnx"
    exported = export_onnx(policy, spec, onnx_path, {"state": states})
    result = {"parity_max_abs_err": exported["parity_max_abs_err"]}
    with torch.no_grad():
        torch_inputs = [{"state": torch.from_numpy(s[None].copy())} for s in states]
        result["torch_p50_us"], result["torch_p99_us"] = time_calls(policy, torch_inputs, TORCH_CALLS, realtime)
    backend = OrtBackend(onnx_path, threads=1)
    ort_inputs = [{"state": s} for s in states]
    result["ort_p50_us"], result["ort_p99_us"] = time_calls(backend.infer, ort_inputs, ORT_CALLS, realtime)
    result["c_p50_us"], result["c_p99_us"] = time_c(onnx_path, workdir / name, "float32", states, realtime)
    result["c_int8_p50_us"], result["c_int8_p99_us"] = time_c(onnx_path, workdir / name, "int8", states, realtime)
    result["torch_over_ort_p99"] = round(result["torch_p99_us"] / result["ort_p99_us"], 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realtime", action="store_true", help="time under SCHED_FIFO (needs CAP_SYS_NICE)")
    args = parser.parse_args()
    realtime = args.realtime and realtime_permitted()
    results = {"bench": "inference", "cpu": platform.processor() or platform.machine(), "batch": 1, "threads": 1,
               "scheduler": "SCHED_FIFO" if realtime else "SCHED_OTHER",
               "load_avg_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        results.update(measure("pick_cube", Path(tmp), realtime))
        results.update({f"{k}_64x64": v for k, v in measure("64x64", Path(tmp), realtime).items()})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
