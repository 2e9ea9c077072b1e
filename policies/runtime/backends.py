"""Inference backends for the runner: onnxruntime with preallocated I/O binding, or the generated C via ctypes.

Both take one observation dict and return the action in env units as a view of a preallocated buffer
(copy it if you keep it past the next call).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from policies.export.onnx_export import make_session, read_spec
from policies.export.spec import action_dim

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8}


def warm_up(backend, obs: dict[str, np.ndarray], calls: int = 200) -> None:
    """Run a few calls so the first real step does not pay for lazy initialisation and cold caches."""
    for _ in range(calls):
        backend.infer(obs)


class OrtBackend:
    """onnxruntime tuned for batch-1 latency: explicit threads, full graph optimization, no spinning
    thread pool, and an I/O binding over buffers allocated once (no allocation per step)."""

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, threads: int = 1):
        import onnxruntime as ort

        self.spec = read_spec(onnx_path)
        self.session = make_session(onnx_path, threads)
        self.inputs: dict[str, np.ndarray] = {}
        self.binding = self.session.io_binding()
        for item in self.session.get_inputs():
            shape = (1, *[int(d) for d in item.shape[1:]])
            buffer = np.zeros(shape, _ORT_DTYPES[item.type])
            self.inputs[item.name] = buffer
            # an OrtValue over a CPU numpy array shares its memory: writing the buffer updates the input
            self.binding.bind_ortvalue_input(item.name, ort.OrtValue.ortvalue_from_numpy(buffer))
        self.action = np.zeros((1, action_dim(self.spec)), np.float32)
        self.binding.bind_ortvalue_output("action", ort.OrtValue.ortvalue_from_numpy(self.action))
        warm_up(self, {name: buffer[0] for name, buffer in self.inputs.items()})

    def infer(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        for name, buffer in self.inputs.items():
            buffer[0] = obs[name]
        self.session.run_with_iobinding(self.binding)
        return self.action[0]


class CBackend:
    """The generated C99 (``policy.c``) built as a shared library for the host and called through ctypes."""

    name = "c"

    def __init__(self, onnx_path: str | Path, c_dir: str | Path, build_dir: str | Path | None = None):
        self.spec = read_spec(onnx_path)
        if self.spec["obs_spec"]["image_shapes"]:
            raise ValueError("the C backend runs state-only policies; this export reads cameras: use the onnxruntime backend.")
        source = Path(c_dir) / "policy.c"
        if not source.is_file():
            raise FileNotFoundError(f"{source} does not exist: export with --format c first.")
        if shutil.which("gcc") is None:
            raise RuntimeError("gcc is not installed: install the Debian package gcc, or use the onnxruntime backend.")
        library = Path(build_dir or source.parent) / "libpolicy.so"
        subprocess.run(["gcc", "-std=c99", "-O2", "-shared", "-fPIC", str(source), "-o", str(library), "-lm"],
                       check=True, capture_output=True)
        self.library = ctypes.CDLL(str(library))
        self.library.policy_forward.argtypes = [ctypes.POINTER(ctypes.c_float)] * 2
        self.library.policy_forward.restype = None
        self.state = np.zeros(int(self.spec["obs_spec"]["state_dim"]), np.float32)
        self.action = np.zeros(action_dim(self.spec), np.float32)
        self._state_ptr = self.state.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        self._action_ptr = self.action.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        warm_up(self, {"state": self.state.copy()})

    def infer(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        self.state[:] = obs["state"]
        self.library.policy_forward(self._state_ptr, self._action_ptr)
        return self.action
