"""The firmware-style control loop (``firmware/firmware_loop.c``) around a generated C policy, on the host.

``build_firmware_library`` compiles ``policy.c`` (from ``policies/export/c_codegen.generate_c``)
with the loop into a shared library; ``FirmwareLoop`` runs it through ctypes for N vehicles in
lock step, so the same C code that would be flashed onto the Crazyflie flies the simulator.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

FIRMWARE_DIR = Path(__file__).parent / "firmware"
STATE_DIM, ACTION_DIM, HISTORY_LENGTH = 18, 4, 32
POLICY_HZ, HISTORY_HZ = 500, 100


class _FirmwareState(ctypes.Structure):
    _fields_ = [("history", ctypes.c_float * (HISTORY_LENGTH * ACTION_DIM)), ("tick", ctypes.c_uint)]


def build_firmware_library(policy_dir: str | Path, output: str | Path, compiler: str = "gcc") -> Path:
    """Compile ``policy_dir/policy.c`` + the firmware loop into ``output`` (a shared library)."""
    policy_dir, output = Path(policy_dir), Path(output)
    if shutil.which(compiler) is None:
        raise FileNotFoundError(f"{compiler} is not installed; install it (apt-get install -y gcc) to build the C policy.")
    if not (policy_dir / "policy.c").is_file():
        raise FileNotFoundError(f"{policy_dir / 'policy.c'} does not exist; run generate_c(..., prefix='policy') first.")
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [compiler, "-std=c99", "-O2", "-Wall", "-Werror", "-shared", "-fPIC", f"-I{policy_dir}",
               f"-I{FIRMWARE_DIR}", str(policy_dir / "policy.c"), str(FIRMWARE_DIR / "firmware_loop.c"),
               "-o", str(output), "-lm"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"compiling the firmware loop failed:\n{result.stderr}")
    return output


class FirmwareLoop:
    """N independent firmware instances (one ``FirmwareState`` each) behind numpy calls."""

    def __init__(self, library: str | Path):
        self._lib = ctypes.CDLL(str(Path(library).resolve()))
        self._lib.firmware_init.argtypes = [ctypes.POINTER(_FirmwareState), ctypes.POINTER(ctypes.c_float)]
        self._lib.firmware_control_batch.argtypes = [ctypes.POINTER(_FirmwareState), ctypes.c_int,
                                                     ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
        self._lib.policy_forward.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
        self._states = (_FirmwareState * 1)()
        self.count = 0

    def reset(self, initial_action: np.ndarray) -> None:
        """(N, 4) rotor commands at take-off fill each vehicle's action history."""
        initial = np.ascontiguousarray(initial_action, np.float32)
        self.count = len(initial)
        self._states = (_FirmwareState * self.count)()
        for i in range(self.count):
            self._lib.firmware_init(ctypes.byref(self._states[i]), initial[i].ctypes.data_as(ctypes.POINTER(ctypes.c_float)))

    def control(self, states: np.ndarray) -> np.ndarray:
        """One 500 Hz tick for every vehicle: (N, 18) state rows -> (N, 4) actions."""
        states = np.ascontiguousarray(states, np.float32)
        if states.shape != (self.count, STATE_DIM):
            raise ValueError(f"states must have shape ({self.count}, {STATE_DIM}), got {states.shape}; call reset first.")
        actions = np.empty((self.count, ACTION_DIM), np.float32)
        self._lib.firmware_control_batch(self._states, self.count, states.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                                         actions.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        return actions

    def history(self, vehicle: int = 0) -> np.ndarray:
        return np.ctypeslib.as_array(self._states[vehicle].history).reshape(HISTORY_LENGTH, ACTION_DIM).copy()

    def inference_us(self, repeats: int = 20_000, seed: int = 0) -> float:
        """Median host time of one ``policy_forward`` call, in microseconds (batches of 1,000 calls)."""
        obs = np.random.default_rng(seed).standard_normal(STATE_DIM + HISTORY_LENGTH * ACTION_DIM).astype(np.float32)
        action = np.empty(ACTION_DIM, np.float32)
        obs_p = obs.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        act_p = action.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        forward, chunk, samples = self._lib.policy_forward, 1000, []
        for _ in range(max(1, repeats // chunk)):
            start = time.perf_counter_ns()
            for _ in range(chunk):
                forward(obs_p, act_p)
            samples.append((time.perf_counter_ns() - start) / chunk / 1e3)
        return float(np.median(samples))
