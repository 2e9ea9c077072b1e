"""The firmware-style C loop: a generated C actor compiled with gcc, driven through ctypes.

Uses an untrained actor (fast); the trained policy flying the simulator through this same loop
is in test_quadrotor_training.py.
"""

import shutil

import numpy as np
import pytest
import torch

from drivers.quadrotor.firmware import FirmwareLoop, build_firmware_library
from policies.export.c_codegen import generate_c
from policies.export.onnx_export import export_onnx, make_session
from robot_rl.spaces import ObsSpec
from robot_rl.vectorized.td3 import DeterministicActor
from robot_rl.vectorized.trainer import StatePolicy
from sim2real.quadrotor import CRAZYFLIE, HoverTaskConfig
from sim2real.quadrotor.evaluation import evaluate_hover_firmware

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is needed to compile the C policy")


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("firmware")
    actor = DeterministicActor(146, 4, (64, 64), initial_action=CRAZYFLIE.hover_action(), activation="tanh")
    obs = np.random.default_rng(0).standard_normal((16, 146)).astype(np.float32)
    exported = export_onnx(StatePolicy(actor), {"obs_spec": ObsSpec(146).to_dict()}, out / "policy.onnx", {"state": obs})
    generated = generate_c(exported["path"], out / "c", prefix="policy")
    library = build_firmware_library(generated.source.parent, out / "libfirmware.so")
    return FirmwareLoop(library), make_session(exported["path"])


def onnx_action(session, obs):
    return session.run(["action"], {"state": np.asarray(obs, np.float32)[None]})[0][0]


def test_each_tick_runs_the_policy_on_state_plus_history(firmware):
    loop, session = firmware
    rng = np.random.default_rng(1)
    initial = np.array([[0.3, 0.32, 0.34, 0.36]], np.float32)
    loop.reset(initial)
    expected_history = np.tile(initial, (32, 1))
    for tick in range(1, 16):
        state = rng.standard_normal((1, 18)).astype(np.float32) * 0.3
        action = loop.control(state)[0]
        reference = onnx_action(session, np.concatenate([state[0], expected_history.ravel()]))
        np.testing.assert_allclose(action, np.clip(reference, -1, 1), atol=1e-5)  # C vs onnxruntime
        if tick % 5 == 0:  # 500 Hz policy, 100 Hz history: every 5th action enters the history
            expected_history = np.vstack([expected_history[1:], action])
        np.testing.assert_array_equal(loop.history(), expected_history)


def test_vehicles_are_independent_and_nan_state_cuts_the_motors(firmware):
    loop, _ = firmware
    loop.reset(np.zeros((3, 4), np.float32))
    states = np.zeros((3, 18), np.float32)
    states[1, 0] = np.nan
    actions = loop.control(states)
    np.testing.assert_array_equal(actions[0], actions[2])
    np.testing.assert_array_equal(actions[1], -1.0)  # NaN -> lowest command, never NaN to the motors
    with pytest.raises(ValueError, match="shape"):
        loop.control(np.zeros((2, 18), np.float32))


def test_closed_loop_harness_runs_the_simulator_at_500_hz(firmware):
    loop, _ = firmware
    result = evaluate_hover_firmware(loop, HoverTaskConfig(episode_steps=20), episodes=4, seed=0)
    assert result["policy_hz"] == 500 and result["episodes"] == 4
    assert loop.history().shape == (32, 4)
    assert loop.inference_us(repeats=2000) < 1000.0  # a 146-64-64-4 MLP in C: microseconds, not milliseconds
