"""FrankyReachEnv over a FrankyArm against the franky-sim servers it starts: real libfranka protocol, real time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("franky", reason="franky-control is not installed (pip install franky-control)")
pytest.importorskip("franky_sim", reason="franky-sim is not installed (pip install franky-sim)")

from drivers.errors import DeviceConnectionError  # noqa: E402
from robot_rl.hardware_envs import franky_reach  # noqa: E402

# the module prefix registers the ids in any process, before and after sim2real registers them too
SIM_REACH = "robot_rl.hardware_envs:robot_rl/FrankySimReach-v0"
REAL_REACH = "robot_rl.hardware_envs:robot_rl/FrankyReach-v0"


def go_to_target(env, max_steps: int = 40):
    """The obvious controller: full speed along target - TCP; returns (steps, last info)."""
    obs, _ = env.reset(seed=3)
    for step in range(1, max_steps + 1):
        obs, reward, terminated, truncated, info = env.step(np.clip(obs[9:12] / 0.02, -1.0, 1.0))
        if terminated or truncated:
            return step, info
    return max_steps, info


def test_making_the_env_touches_no_robot():
    # the learner and `robot-rl export` build envs only to read their spaces
    env = gym.make(SIM_REACH)
    assert env.observation_space.shape == (12,) and env.action_space.shape == (3,)
    assert env.unwrapped.control_hz == 10.0 and env.unwrapped.obs_layout[-1] == ("target_rel_ee", 3)
    assert env.unwrapped._held is None and not franky_reach._LEASES
    env.close()


def test_reaches_the_target_at_10_hz_on_the_monotonic_clock():
    env = gym.make(SIM_REACH)
    try:
        steps, info = go_to_target(env)
        summary = env.unwrapped.summary()
    finally:
        env.close()
    print(f"\nreached in {steps} steps: {summary}")
    assert info["is_success"] and info["distance_m"] < 0.02
    # targets lie at most 0.25 m from home and the TCP moves up to 2 cm per step; measured 9-14 steps
    assert steps <= 25
    # every step waits for the 100 ms period to end; measured p50 100.0 ms, p99 < 101 ms when idle
    assert 99.0 <= summary["period_ms_p50"] <= 110.0
    assert summary["path_length_m"] > 0.05  # the arm moved
    assert summary["missed_deadlines"] <= 2  # the controller above is instant: a miss is CPU starvation only


def test_envs_of_one_process_share_one_server_that_stops_with_the_last():
    train_env, eval_env = gym.make(SIM_REACH), gym.make(SIM_REACH)
    train_env.reset(seed=0)
    eval_env.reset(seed=1)
    lease = train_env.unwrapped._held
    assert eval_env.unwrapped._held is lease and lease.users == 2  # one arm, one libfranka client
    server = lease.server
    train_env.close()
    assert server.returncode is None
    eval_env.step(np.zeros(3))  # still usable
    eval_env.close()
    assert server._proc is None and not franky_reach._LEASES


def test_a_server_killed_mid_episode_raises_one_sentence_and_reset_reconnects():
    env = gym.make(SIM_REACH)
    try:
        env.reset(seed=0)
        for _ in range(3):
            env.step(np.array([1.0, 0.0, 0.0]))
        old = env.unwrapped._held
        old.server.kill()  # like a robot switched off: no goodbye on the sockets
        t0 = time.monotonic()
        with pytest.raises(DeviceConnectionError) as caught:
            for _ in range(20):
                env.step(np.array([1.0, 0.0, 0.0]))
        noticed_s = time.monotonic() - t0
        message = str(caught.value)
        print(f"\n{message}\n(noticed after {noticed_s:.2f} s)")
        assert "exited with code -9 mid-episode" in message and "reset()" in message
        assert message.count(". ") == 0 and message.endswith(".")  # one sentence
        assert noticed_s < 0.5  # the next step checks the server process; a real robot goes stale in 0.5 s
        env.reset(seed=1)  # a fresh server
        assert env.unwrapped._held is not old and env.unwrapped._held.server.returncode is None
        env.step(np.zeros(3))
    finally:
        env.close()


def test_the_server_dies_with_the_process_that_started_it(tmp_path):
    script = textwrap.dedent("""
        import time
        from drivers.arms.franky_sim_twin import FrankySimProcess
        server = FrankySimProcess()
        server.start()
        print(server._proc.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    server_pid = int(parent.stdout.readline())
    os.kill(server_pid, 0)  # running
    parent.send_signal(signal.SIGKILL)  # no atexit, no close(): only the kernel can stop the server now
    parent.wait()
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(server_pid, signal.SIGKILL)
    pytest.fail("the franky-sim server outlived its killed parent")


def test_an_unreachable_robot_says_what_to_check():
    env = gym.make(REAL_REACH, host="127.0.0.254")
    try:
        with pytest.raises(DeviceConnectionError, match=r"could not reach the Franka at 127\.0\.0\.254 .*FCI is enabled in Desk"):
            env.reset()
    finally:
        env.close()


def test_bad_settings_are_config_errors_naming_the_field():
    from robot_rl.config import ConfigError, session_from_dict
    from robot_rl.envs import make_env

    def make(**env_kwargs):
        return make_env(session_from_dict({"name": "reach", "env": SIM_REACH, "env_kwargs": env_kwargs}))

    with pytest.raises(ConfigError, match="env_kwargs.target_box_m must lie inside the safety workspace box"):
        make(target_box_m=((0.45, -0.12, 0.35), (0.9, 0.12, 0.5)))
    with pytest.raises(ConfigError, match="env_kwargs.safety.max_speed_m_s"):
        make(safety={"max_speed_m_s": -1.0})
    with pytest.raises(ConfigError, match="either env_kwargs.host"):
        make(host="172.16.0.2")  # FrankySimReach-v0 starts a server: a host as well is ambiguous


def test_a_silent_robot_is_noticed_before_libfranka_times_out():
    # a frozen server keeps its sockets open, as an unplugged cable does: only the robot's clock tells
    env = gym.make(SIM_REACH)
    try:
        env.reset(seed=0)
        env.step(np.zeros(3))
        server = env.unwrapped._held.server
        os.kill(server._proc.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        try:
            with pytest.raises(DeviceConnectionError) as caught:
                for _ in range(30):
                    env.step(np.array([0.0, 1.0, 0.0]))
            noticed_s = time.monotonic() - t0
        finally:
            os.kill(server._proc.pid, signal.SIGCONT)
        message = str(caught.value)
        print(f"\n{message}\n(raised after {noticed_s:.2f} s)")
        assert "stopped answering mid-episode" in message and "call reset() to reconnect" in message
        assert message.count(". ") == 0 and message.endswith(".")  # one sentence
        # measured either 1.0 s (libfranka's UDP timeout, when a state read blocks) or 2.6 s (the 0.5 s frozen-clock
        # check, then hold() waiting its 2 s for a stop motion on the dead link); bound with margin for load
        assert noticed_s < 4.0
    finally:
        env.close()


def test_the_same_task_runs_on_the_mujoco_arm():
    # code above the Arm interface never asks which backend it has
    env = gym.make(SIM_REACH, arm="mujoco")
    try:
        steps, info = go_to_target(env)
        summary = env.unwrapped.summary()
    finally:
        env.close()
    print(f"\nMujocoArm reached in {steps} steps: {summary}")
    assert summary["robot"] == "the MuJoCo arm" and info["is_success"]
    assert steps <= 25  # same bound as over franky-sim: the same 2 cm per step
