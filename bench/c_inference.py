"""Batch-1 latency of the generated C policy on the host, next to onnxruntime and torch eager.

Models: a pick-cube-sized actor 13->256->256->4 with LayerNorm+ReLU, and the Learning-to-Fly actor
shape 146->64->64->4 with tanh ("_64x64" keys). Both normalise the observation, squash with tanh and
rescale to the action bounds. The C figures come from a small compiled harness that times each
call with clock_gettime(CLOCK_MONOTONIC) in a tight C loop (no Python in the timed path);
onnxruntime (1 thread, ORT_ENABLE_ALL) and torch (1 thread, eager, no_grad) are timed per call from
Python with perf_counter_ns. Also reports Cortex-M4 section sizes when arm-none-eabi-gcc exists.
On a shared machine the p99 figures measure the neighbours as much as the code: the JSON carries
the load average, and ``--realtime`` runs everything under SCHED_FIFO (as a deployed control loop
would; needs root or CAP_SYS_NICE). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from policies.export.c_codegen import generate_c  # noqa: E402

torch.set_num_threads(1)
C_CALLS, ORT_CALLS, TORCH_CALLS, N_INPUTS = 20000, 5000, 2000, 64
HOST_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]
ARM_FLAGS = ["-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-O2",
             "-Wall", "-Wextra", "-Werror"]

HARNESS_C = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "policy.h"

static int compare(const void *a, const void *b)
{
    const long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* usage: harness calls observations.f32 n_observations; prints "p50_ns p99_ns checksum" */
int main(int argc, char **argv)
{
    if (argc != 4) {
        return 2;
    }
    const int calls = atoi(argv[1]), count = atoi(argv[3]);
    float *obs = malloc(sizeof(float) * POLICY_N_OBS * count);
    long long *elapsed_ns = malloc(sizeof(long long) * calls);
    FILE *file = fopen(argv[2], "rb");
    if (!obs || !elapsed_ns || !file || fread(obs, sizeof(float) * POLICY_N_OBS, count, file) != (size_t)count) {
        return 2;
    }
    fclose(file);
    float action[POLICY_N_ACT], checksum = 0.0f;
    for (int i = 0; i < 1000; ++i) {  /* warm caches and branch predictors */
        policy_forward(obs + (i % count) * POLICY_N_OBS, action);
    }
    for (int i = 0; i < calls; ++i) {
        struct timespec start, stop;
        clock_gettime(CLOCK_MONOTONIC, &start);
        policy_forward(obs + (i % count) * POLICY_N_OBS, action);
        clock_gettime(CLOCK_MONOTONIC, &stop);
        elapsed_ns[i] = (stop.tv_sec - start.tv_sec) * 1000000000LL + (stop.tv_nsec - start.tv_nsec);
        checksum += action[0];
    }
    qsort(elapsed_ns, calls, sizeof(long long), compare);
    printf("%lld %lld %g\n", elapsed_ns[calls / 2], elapsed_ns[(calls * 99) / 100], (double)checksum);
    return 0;
}
"""


class ExampleActor(nn.Module):
    """obs -> (obs - mean) / std -> MLP -> mean half of a Gaussian head -> tanh -> action bounds."""

    def __init__(self, n_obs: int, hidden: list[int], n_act: int, layer_norm: bool, activation: type[nn.Module]):
        super().__init__()
        layers, width = [], n_obs
        for h in hidden:
            layers += [nn.Linear(width, h), *([nn.LayerNorm(h)] if layer_norm else []), activation()]
            width = h
        self.trunk = nn.Sequential(*layers, nn.Linear(width, 2 * n_act))
        self.register_buffer("obs_mean", torch.randn(n_obs))
        self.register_buffer("obs_std", torch.rand(n_obs) + 0.5)
        self.register_buffer("action_scale", torch.full((n_act,), 0.5))
        self.register_buffer("action_bias", torch.linspace(-0.2, 0.2, n_act))

    def forward(self, obs):
        mean, _log_std = self.trunk((obs - self.obs_mean) / self.obs_std).chunk(2, dim=-1)
        return torch.tanh(mean) * self.action_scale + self.action_bias


@contextlib.contextmanager
def timing_priority(realtime: bool):
    """SCHED_FIFO around a timed section (and the harness it starts) when --realtime; the kernel's RT
    throttling still leaves 5% of each core to everyone else."""
    if not realtime:
        yield
        return
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    try:
        yield
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def realtime_permitted() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True
    except (PermissionError, AttributeError, OSError):
        return False


def percentiles_us(samples_ns) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(samples_ns, np.float64), [50, 99]) / 1e3
    return round(float(p50), 2), round(float(p99), 2)


def time_c(onnx_path: Path, workdir: Path, weights: str, observations: np.ndarray,
           realtime: bool) -> tuple[float, float]:
    build = workdir / f"c_{weights}"
    generate_c(onnx_path, build, weights=weights)
    (build / "harness.c").write_text(HARNESS_C)
    (build / "observations.f32").write_bytes(np.ascontiguousarray(observations, np.float32).tobytes())
    subprocess.run(["gcc", *HOST_FLAGS, "harness.c", "policy.c", "-o", "harness", "-lm"], cwd=build, check=True)
    with timing_priority(realtime):
        out = subprocess.run(["./harness", str(C_CALLS), "observations.f32", str(len(observations))], cwd=build,
                             check=True, capture_output=True, text=True).stdout.split()
    return round(int(out[0]) / 1e3, 2), round(int(out[1]) / 1e3, 2)


def time_ort(onnx_path: Path, observations: np.ndarray, realtime: bool) -> tuple[float, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feeds = [{"obs": o[None]} for o in observations]
    for feed in feeds * 10:
        session.run(None, feed)
    samples = []
    with timing_priority(realtime):
        for i in range(ORT_CALLS):
            start = time.perf_counter_ns()
            session.run(None, feeds[i % len(feeds)])
            samples.append(time.perf_counter_ns() - start)
    return percentiles_us(samples)


def time_torch(model: nn.Module, observations: np.ndarray, realtime: bool) -> tuple[float, float]:
    inputs = [torch.from_numpy(o[None].copy()) for o in observations]
    samples = []
    with torch.no_grad(), timing_priority(realtime):
        for x in inputs * 5:
            model(x)
        for i in range(TORCH_CALLS):
            start = time.perf_counter_ns()
            model(inputs[i % len(inputs)])
            samples.append(time.perf_counter_ns() - start)
    return percentiles_us(samples)


def arm_sizes(onnx_path: Path, workdir: Path, weights: str) -> dict[str, int] | None:
    if shutil.which("arm-none-eabi-gcc") is None:
        return None
    build = workdir / f"arm_{weights}"
    source = generate_c(onnx_path, build, weights=weights).source
    subprocess.run(["arm-none-eabi-gcc", *ARM_FLAGS, "-c", source.name, "-o", "policy.o"], cwd=build, check=True)
    table = subprocess.run(["arm-none-eabi-size", "-A", "policy.o"], cwd=build, check=True, capture_output=True,
                           text=True).stdout
    sizes = {line.split()[0]: int(line.split()[1]) for line in table.splitlines() if line.startswith(".")}
    return {"text": sizes.get(".text", 0), "rodata": sizes.get(".rodata", 0)}


def measure(name: str, model: nn.Module, workdir: Path, realtime: bool) -> dict:
    model.eval()
    n_obs = model.obs_mean.shape[0]
    onnx_path = workdir / f"{name}.onnx"
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, n_obs),), str(onnx_path), dynamo=False, opset_version=17,
                          input_names=["obs"], output_names=["action"], dynamic_axes={"obs": {0: "batch"}})
    rng = np.random.default_rng(0)
    observations = (model.obs_mean.numpy() + model.obs_std.numpy() * rng.standard_normal((N_INPUTS, n_obs))
                    ).astype(np.float32)
    result = {}
    result["c_p50_us"], result["c_p99_us"] = time_c(onnx_path, workdir, "float32", observations, realtime)
    result["c_int8_p50_us"], result["c_int8_p99_us"] = time_c(onnx_path, workdir, "int8", observations, realtime)
    result["ort_p50_us"], result["ort_p99_us"] = time_ort(onnx_path, observations, realtime)
    result["torch_p50_us"], result["torch_p99_us"] = time_torch(model, observations, realtime)
    for weights in ("float32", "int8"):
        sizes = arm_sizes(onnx_path, workdir, weights)
        if sizes is not None:
            tag = "" if weights == "float32" else "_int8"
            result[f"arm_text_bytes{tag}"], result[f"arm_rodata_bytes{tag}"] = sizes["text"], sizes["rodata"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realtime", action="store_true", help="time under SCHED_FIFO (needs CAP_SYS_NICE)")
    args = parser.parse_args()
    realtime = args.realtime and realtime_permitted()
    scheduler = "SCHED_FIFO" if realtime else "SCHED_OTHER"
    if args.realtime and not realtime:
        scheduler += " (SCHED_FIFO not permitted: run as root or grant CAP_SYS_NICE)"
    torch.manual_seed(0)
    pick_cube = ExampleActor(13, [256, 256], 4, layer_norm=True, activation=nn.ReLU)
    learning_to_fly = ExampleActor(146, [64, 64], 4, layer_norm=False, activation=nn.Tanh)
    with tempfile.TemporaryDirectory() as tmp:
        results = {"bench": "c_inference", "cpu": platform.processor() or platform.machine(),
                   "c_timing": "compiled C harness, clock_gettime(CLOCK_MONOTONIC) per call, gcc -std=c99 -O2",
                   "python_timing": "perf_counter_ns per call, batch 1, 1 thread", "scheduler": scheduler,
                   "load_avg_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
        results.update(measure("pick_cube", pick_cube, Path(tmp), realtime))
        results.update({f"{k}_64x64": v for k, v in measure("l2f", learning_to_fly, Path(tmp), realtime).items()})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
