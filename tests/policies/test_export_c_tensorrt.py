"""``robot-rl export --format c`` and ``--format tensorrt`` on a pick-cube run.

The C is compiled with gcc (strict C99, warnings as errors), called through ctypes and compared with
onnxruntime on 1,000 observations; the Cortex-M4 build reports its section sizes. TensorRT needs an
NVIDIA GPU: without one the export must refuse in one sentence; with one it builds both precisions.
"""

from __future__ import annotations

import ctypes
import importlib.util
import shutil
import subprocess

import numpy as np
import onnxruntime as ort
import pytest
import torch
from export_runs import PIXEL_SESSION, STATE_SESSION, make_run

from policies.export.onnx_export import ExportError
from policies.export.tensorrt_export import TensorRTUnavailable, cache_key
from robot_rl.commands import export as export_command
from robot_rl.commands.export import export_run
from robot_rl.episodes import episode_paths, read_episode

torch.set_num_threads(1)
HOST_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"]
ARM_FLAGS = ["-std=c99", "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard", "-O2", "-Wall",
             "-Wextra", "-Werror"]
N_INPUTS = 1000
FLOAT32_TOLERANCE = 1e-5  # the bound; measured 4.5e-7 on this actor
INT8_TOLERANCE = 1e-2  # the bound for int8 weights on in-distribution inputs; measured 4.4e-3 here


@pytest.fixture(scope="module")
def c_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("c_export")
    run = make_run(root / "run", STATE_SESSION, demos=5)
    manifest = export_run(run.root, "c", root / "out")
    return run, manifest, root / "out"


def observations(run, seed: int = 0) -> np.ndarray:
    """1,000 in-distribution observations: recorded demo states, resampled with noise of 10% of each dim's spread."""
    states = np.concatenate([read_episode(p)["obs/state"] for p in episode_paths(run.demos)])
    rng = np.random.default_rng(seed)
    picked = states[rng.integers(0, len(states), N_INPUTS)]
    noise = 0.1 * (states.std(axis=0) + 1e-3) * rng.standard_normal(picked.shape)
    return (picked + noise).astype(np.float32)


def _sha256_of(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_library(source, out) -> ctypes.CDLL:
    library_path = out / (source.parent.name + ".so")
    result = subprocess.run(["gcc", *HOST_FLAGS, "-shared", "-fPIC", str(source), "-o", str(library_path), "-lm"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    library = ctypes.CDLL(str(library_path))
    library.policy_forward.argtypes = [ctypes.POINTER(ctypes.c_float)] * 2
    library.policy_forward.restype = None
    library.policy_self_test.argtypes = [ctypes.c_float]
    library.policy_self_test.restype = ctypes.c_int
    return library


def run_c(library, obs: np.ndarray, action_dim: int) -> np.ndarray:
    actions = np.zeros((len(obs), action_dim), np.float32)
    pointer = ctypes.POINTER(ctypes.c_float)
    for o, a in zip(np.ascontiguousarray(obs), actions):
        library.policy_forward(o.ctypes.data_as(pointer), a.ctypes.data_as(pointer))
    return actions


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not found; install the Debian package gcc")
@pytest.mark.parametrize("weights,tolerance", [("float32", FLOAT32_TOLERANCE), ("int8", INT8_TOLERANCE)])
def test_generated_c_matches_onnxruntime(c_export, tmp_path, weights, tolerance):
    run, manifest, out = c_export
    header = (out / "c" / weights / "policy.h").read_text()
    assert manifest["c"][weights]["source"].endswith("policy.c")
    assert _sha256_of(out / "policy.onnx") in header  # the model hash travels with the C
    assert "malloc" not in (out / "c" / weights / "policy.c").read_text()
    library = build_library(out / "c" / weights / "policy.c", tmp_path)
    assert library.policy_self_test(ctypes.c_float(tolerance)) == 0  # the embedded golden pair replays
    obs = observations(run)
    session = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(["action"], {"state": obs})[0]
    error = np.max(np.abs(run_c(library, obs, expected.shape[1]) - expected))
    print(f"C {weights} vs onnxruntime over {N_INPUTS} inputs: max abs error {error:.3g}")
    assert error <= tolerance


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                    reason="arm-none-eabi-gcc not found; install the Debian package gcc-arm-none-eabi")
@pytest.mark.parametrize("weights", ["float32", "int8"])
def test_generated_c_builds_for_cortex_m4(c_export, tmp_path, weights, record_property):
    _run, _manifest, out = c_export
    source = out / "c" / weights / "policy.c"
    result = subprocess.run(["arm-none-eabi-gcc", *ARM_FLAGS, "-c", str(source), "-o", str(tmp_path / "policy.o")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    table = subprocess.run(["arm-none-eabi-size", "-A", str(tmp_path / "policy.o")], capture_output=True, text=True,
                           check=True).stdout
    sizes = {line.split()[0]: int(line.split()[1]) for line in table.splitlines() if line.startswith(".")}
    text, rodata = sizes.get(".text", 0), sizes.get(".rodata", 0)
    record_property(f"cortex_m4_{weights}_text_bytes", text)
    record_property(f"cortex_m4_{weights}_rodata_bytes", rodata)
    print(f"cortex-m4 {weights}: .text {text} B, .rodata {rodata} B")
    assert text > 0 and rodata > 4 * 13 * 256  # the weights sit in flash, not in RAM
    assert sizes.get(".data", 0) == 0 and sizes.get(".bss", 0) < 8 * 1024  # static scratch only


def test_c_export_refuses_a_pixel_policy(tmp_path):
    run = make_run(tmp_path / "run", PIXEL_SESSION, demos=0)
    with pytest.raises(ExportError, match=r"--format c needs a state-only policy.*--format onnx"):
        export_run(run.root, "c", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def cuda_and_tensorrt() -> bool:
    return importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


@pytest.mark.skipif(cuda_and_tensorrt(), reason="TensorRT and a CUDA GPU are present: the build test runs instead")
def test_tensorrt_export_refuses_cleanly_without_a_gpu(c_export, tmp_path, capsys):
    run, _manifest, _out = c_export
    with pytest.raises(TensorRTUnavailable) as caught:
        export_run(run.root, "tensorrt", tmp_path / "out")
    message = str(caught.value)
    assert message.endswith("or use --format onnx.") and "\n" not in message
    assert not (tmp_path / "out").exists()  # refused before writing anything
    args = type("Args", (), {"run": str(run.root), "format": "tensorrt", "out": str(tmp_path / "out")})
    assert export_command.run(args) == 1
    assert capsys.readouterr().err.strip() == f"robot-rl export: {message}"


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_and_tensorrt(), reason="needs TensorRT and a CUDA GPU")
def test_tensorrt_engines_build_cache_and_match_onnxruntime(c_export, tmp_path, monkeypatch):
    run, _manifest, _out = c_export
    monkeypatch.setenv("ROBOT_RL_TRT_CACHE", str(tmp_path / "cache"))
    from policies.export import tensorrt_export

    monkeypatch.setattr(tensorrt_export, "DEFAULT_CACHE", tmp_path / "cache")
    first = export_run(run.root, "tensorrt", tmp_path / "out")["tensorrt"]
    assert first["engines"]["fp32"]["parity_vs_onnxruntime_max_abs_err"] <= 1e-4
    assert first["engines"]["fp16"]["parity_vs_onnxruntime_max_abs_err"] <= 1e-2
    again = export_run(run.root, "tensorrt", tmp_path / "out2")["tensorrt"]
    assert all(e["cache_hit"] for e in again["engines"].values())


def test_engine_cache_key_changes_with_each_part():
    base = cache_key("10.0", "NVIDIA H100", "abc", "fp16")
    assert len({base, cache_key("10.1", "NVIDIA H100", "abc", "fp16"), cache_key("10.0", "NVIDIA H200", "abc", "fp16"),
                cache_key("10.0", "NVIDIA H100", "abd", "fp16"), cache_key("10.0", "NVIDIA H100", "abc", "fp32")}) == 5
