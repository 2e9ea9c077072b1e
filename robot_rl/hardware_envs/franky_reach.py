"""Reach a random target with a Franka's TCP, in real time, through the `Arm` interface.

The arm is a `SafeArm` around a `FrankyArm` (a real robot at `host`, or a franky-sim server this
env starts on a free loopback address) or around a `MujocoArm` (`arm="mujoco"`). Every `step()`
sends one pose target (the measured TCP plus the action's delta, clipped by the safety filter),
then waits on the monotonic clock until the control period ends and reads the state: a call that
arrives after its period ended counts as a missed deadline. `reset()` drives the arm back to its
home pose and draws a new target.

All envs of one process that name the same robot share one connection (and one franky-sim server):
it is one physical arm, and libfranka accepts one controlling client. The connection opens at the
first `reset()`, so an env made only to read its spaces touches no robot. It closes with the last
env, at interpreter exit, and a franky-sim server also dies with the process that started it.
"""

from __future__ import annotations

import atexit
import json
import re
import sys
import time
import weakref
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pydantic import ValidationError

from drivers.arms.base import ArmState
from drivers.errors import DeviceConnectionError, DeviceError
from drivers.safety import SafeArm, SafetyConfig

# franky-sim's start pose (q = 0, 0, 0, -1.57, 0, 1.57, 0.785): TCP 0.554 m ahead, pointing down
HOME_POS_M = (0.5544, 0.0, 0.5214)
HOME_QUAT_XYZW = (1.0, 0.0, 0.0, 0.0)
OBS_LAYOUT = [("ee_pos", 3), ("ee_vel", 3), ("target_pos", 3), ("target_rel_ee", 3)]
ACTION_LAYOUT = [("ee_delta_xyz", 3)]
SUMMARY_PREFIX = "franky_reach summary: "  # one JSON line on stderr when an env that stepped closes


@dataclass
class _Lease:
    """One connected arm (and its franky-sim server, if this process started one) and how many envs use it."""

    arm: SafeArm
    server: object | None  # drivers.arms.franky_sim_twin.FrankySimProcess
    name: str  # how error messages name the robot
    users: int = 0

    def release(self) -> None:
        try:
            self.arm.close()  # holds, then disconnects
        except DeviceError:
            pass  # already gone: nothing left to hold
        if self.server is not None:
            self.server.stop()


class ReachConfigError(gym.error.Error, ValueError):
    """Settings the task cannot run with; `make_env` turns it into a ConfigError naming the session file."""


_LEASES: dict[str, _Lease] = {}
_OPEN_ENVS: "weakref.WeakSet[FrankyReachEnv]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # the actor process never closes its envs: hold the arm and stop servers on the way out
    for env in list(_OPEN_ENVS):
        env.close()
    for key in list(_LEASES):
        _LEASES.pop(key).release()


class FrankyReachEnv(gym.Env):
    metadata = {"render_modes": [], "render_fps": 10}

    def __init__(
        self,
        *,
        host: str | None = None,
        start_sim_server: bool | None = None,
        arm: str = "franky",
        control_hz: float = 10.0,
        max_episode_steps: int = 40,
        action_scale_m: float = 0.02,
        success_radius_m: float = 0.02,
        reward_length_m: float = 0.1,
        target_box_m=((0.45, -0.12, 0.35), (0.65, 0.12, 0.50)),
        home_pos_m=HOME_POS_M,
        home_quat_xyzw=HOME_QUAT_XYZW,
        home_tolerance_m: float = 0.01,
        home_timeout_s: float = 10.0,
        safety: dict | None = None,
        realtime: str | None = None,
        relative_dynamics_factor: float = 0.2,
        stale_state_timeout_s: float = 0.5,
    ):
        if arm not in ("franky", "mujoco"):
            raise ReachConfigError(f"env_kwargs.arm must be 'franky' or 'mujoco', not {arm!r}.")
        if start_sim_server is None:
            start_sim_server = host is None and arm == "franky"
        if arm == "franky" and start_sim_server == (host is not None):
            raise ReachConfigError("give either env_kwargs.host (a real Franka) or start_sim_server: true (franky-sim), not both or neither.")
        self.host, self.start_sim_server, self.arm_backend = host, bool(start_sim_server), arm
        self.control_hz = float(control_hz)
        self.period_s = 1.0 / self.control_hz
        self.max_episode_steps = int(max_episode_steps)
        self.action_scale_m = float(action_scale_m)
        self.success_radius_m = float(success_radius_m)
        # distance in units of 10 cm keeps per-step rewards O(1), the scale SAC's initial temperature suits
        self.reward_length_m = float(reward_length_m)
        self.target_low_m, self.target_high_m = (np.asarray(b, dtype=float) for b in target_box_m)
        self.home_pos_m = np.asarray(home_pos_m, dtype=float)
        self.home_quat_xyzw = np.asarray(home_quat_xyzw, dtype=float)
        self.home_tolerance_m = float(home_tolerance_m)
        self.home_timeout_s = float(home_timeout_s)
        try:
            self.safety = SafetyConfig.model_validate({"command_rate_hz": self.control_hz, **(safety or {})})
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ReachConfigError(f"env_kwargs.safety.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}; fix that value.") from None
        self.realtime = realtime or ("enforce" if host is not None else "ignore")
        self.relative_dynamics_factor = float(relative_dynamics_factor)
        self.stale_state_timeout_s = float(stale_state_timeout_s)
        low, high = self.safety.box_low_m, self.safety.box_high_m
        for what, points in (("target_box_m", (self.target_low_m, self.target_high_m)), ("home_pos_m", (self.home_pos_m,))):
            if any(np.any(p < low) or np.any(p > high) for p in points):
                raise ReachConfigError(f"env_kwargs.{what} must lie inside the safety workspace box {self.safety.workspace_box_m}; shrink it or widen safety.workspace_box_m.")

        self.metadata = {**self.metadata, "render_fps": self.control_hz}
        self.obs_layout = list(OBS_LAYOUT)
        self.action_layout = list(ACTION_LAYOUT)
        self.observation_space = spaces.Box(-np.inf, np.inf, (sum(n for _, n in OBS_LAYOUT),), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (3,), np.float32)

        self._held: _Lease | None = None
        self._state: ArmState | None = None
        self._target_m = self.target_low_m.copy()
        self._steps = 0
        self._deadline_s = 0.0
        self._paused = False
        self._robot_time = (None, 0.0)  # (last robot_time_ns, monotonic s when it last advanced)
        # real-time and motion figures over the env's life (SUMMARY_PREFIX line at close)
        self.total_steps = 0
        self.episodes = 0
        self.successes = 0
        self.missed_deadlines = 0
        self.max_late_ms = 0.0
        self.path_length_m = 0.0
        self.home_returns_s: list[float] = []
        self._periods_ms: list[float] = []
        self._last_obs_s: float | None = None
        _OPEN_ENVS.add(self)

    # ---- the shared connection -----------------------------------------------------------------
    def _key(self) -> str:
        robot = self.host if self.host is not None else ("franky-sim" if self.arm_backend == "franky" else "mujoco")
        return json.dumps([robot, self.safety.model_dump(mode="json"), self.realtime, self.relative_dynamics_factor])

    def _acquire(self) -> None:
        key = self._key()
        lease = _LEASES.get(key)
        if lease is None:
            lease = _LEASES[key] = self._connect()
        lease.users += 1
        self._held = lease
        self._robot_time = (None, 0.0)

    def _connect(self) -> _Lease:
        server = None
        if self.arm_backend == "mujoco":
            from drivers.arms.mujoco_arm import MujocoArm

            inner, name = MujocoArm(), "the MuJoCo arm"
        else:
            from drivers.arms.franky_arm import FrankyArm

            host = self.host
            if self.start_sim_server:
                from drivers.arms.franky_sim_twin import FrankySimProcess

                server = FrankySimProcess()
                host = server.start()
            inner = FrankyArm(host, realtime=self.realtime, relative_dynamics_factor=self.relative_dynamics_factor, gripper=False)
            name = f"the franky-sim server at {host}" if server is not None else f"the Franka at {host}"
        arm = SafeArm(inner, self.safety)
        try:
            arm.connect()
        except BaseException:
            if server is not None:
                server.stop()
            raise
        return _Lease(arm, server, name)

    def _let_go(self) -> None:
        """Stop using the connection; the last env to let go closes it."""
        lease, self._held = self._held, None
        if lease is None:
            return
        lease.users -= 1
        if lease.users <= 0:
            if _LEASES.get(self._key()) is lease:
                del _LEASES[self._key()]
            lease.release()

    def _drop_broken_lease(self) -> None:
        """Forget a connection that cannot recover; the other envs sharing it reconnect at their next reset()."""
        if self._held is not None and _LEASES.get(self._key()) is self._held:
            del _LEASES[self._key()]
        self._let_go()

    @property
    def arm(self) -> SafeArm:
        if self._held is None:
            raise DeviceError("FrankyReachEnv has no arm yet; call reset() first.")
        return self._held.arm

    # ---- failures ------------------------------------------------------------------------------
    def _lost(self, detail: str) -> DeviceError:
        """One sentence for an arm that is gone mid-episode; the safe state is engaged where it still can be."""
        from drivers.arms.franky_sim_twin import READY_LINE

        lease = self._held
        server = lease.server
        if server is not None and server.returncode is not None:  # nothing left to hold
            said = [line for line in list(server.output)[-3:] if READY_LINE not in line]
            message = (f"{lease.name} exited with code {server.returncode} mid-episode ({' | '.join(said) or 'no last words'}); the next "
                       "reset() starts a new server, and if it keeps dying run `python -m drivers.arms.franky_sim_twin --hostname 127.0.0.2` to see why.")
        else:
            try:
                lease.arm.hold()
            except DeviceError:
                pass  # the connection is gone; the robot's own communication watchdog stops it
            libfranka = re.search(r"\((libfranka[^)]*)\)", detail)  # the cause, without the arm's own advice
            detail = libfranka.group(1) if libfranka else detail.rstrip(".")
            check = ("that the server process is not stopped or starved of CPU" if server is not None
                     else "the network cable, the robot's power and its user stop")
            message = f"{lease.name} stopped answering mid-episode ({detail}); the arm was told to hold: check {check}, then call reset() to reconnect."
        return DeviceConnectionError(message)

    def _read_state(self) -> ArmState:
        lease = self._held
        if lease.server is not None and lease.server.returncode is not None:
            raise self._lost("server process exited")
        try:
            state = lease.arm.state()
        except DeviceError as exc:
            raise self._lost(str(exc)) from None
        if state.fault is not None and not state.fault.recoverable:
            raise self._lost(state.fault.reason)
        now_s = time.monotonic()
        last_ns, since_s = self._robot_time
        if state.robot_time_ns is None or state.robot_time_ns != last_ns:
            self._robot_time = (state.robot_time_ns, now_s)
        elif now_s - since_s > self.stale_state_timeout_s:  # libfranka itself notices only after ~1 s
            raise self._lost(f"its clock has not advanced for {now_s - since_s:.1f} s")
        return state

    # ---- gymnasium ----------------------------------------------------------------------------
    def _observation(self) -> np.ndarray:
        state = self._state
        ee_m = state.ee_pos_m
        return np.concatenate([ee_m, state.ee_twist[:3], self._target_m, self._target_m - ee_m]).astype(np.float32)

    def _distance_m(self) -> float:
        return float(np.linalg.norm(self._target_m - self._state.ee_pos_m))

    def _go_home(self) -> float:
        """Stream the home pose at the control rate until the TCP rests there; returns the seconds it took."""
        t0 = time.monotonic()
        while True:
            self._send(self.home_pos_m)
            time.sleep(self.period_s)
            state = self._read_state()
            error_m = float(np.linalg.norm(state.ee_pos_m - self.home_pos_m))
            if error_m < self.home_tolerance_m and np.linalg.norm(state.ee_twist[:3]) < 0.01:
                self._state = state
                return time.monotonic() - t0
            if time.monotonic() - t0 > self.home_timeout_s:
                raise DeviceError(
                    f"{self._held.name} did not get back to the home pose {self.home_pos_m.round(3).tolist()} within "
                    f"{self.home_timeout_s:.0f} s (still {error_m * 100:.1f} cm away); clear the path or move home_pos_m inside the reachable workspace."
                )

    def _send(self, target_m: np.ndarray) -> None:
        try:
            self.arm.command_pose(target_m, self.home_quat_xyzw)
        except DeviceError as exc:
            raise self._lost(str(exc)) from None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self._held is not None and _LEASES.get(self._key()) is not self._held:
            self._let_go()  # another env dropped this connection as broken
        if self._held is None:
            self._acquire()
        self._robot_time = (None, 0.0)  # an idle arm may not stream its clock: judge staleness within an episode only
        state = self._read_state_or_reconnect()
        if state.fault is not None:  # recoverable: a reflex or a force stop latched last episode
            if not self.arm.recover():
                raise DeviceError(f"{self._held.name} stays faulted ({state.fault.reason}); clear the cause, then reset() again.")
        self.home_returns_s.append(self._go_home())
        self._target_m = self.np_random.uniform(self.target_low_m, self.target_high_m)
        self._steps = 0
        self.episodes += 1
        self._deadline_s = time.monotonic() + self.period_s
        self._paused = False
        self._last_obs_s = time.monotonic()
        return self._observation(), {"distance_m": self._distance_m(), "home_return_s": self.home_returns_s[-1]}

    def _read_state_or_reconnect(self) -> ArmState:
        try:
            return self._read_state()
        except DeviceError:
            # the arm was lost (e.g. mid-episode): one fresh connection, whose own failure says what to fix
            self._drop_broken_lease()
            self._acquire()
            return self._read_state()

    def step(self, action):
        if self._state is None:
            raise gym.error.ResetNeeded("call reset() before step().")
        action = np.asarray(action, dtype=float).reshape(3)
        delta_m = np.clip(np.nan_to_num(action, nan=0.0), -1.0, 1.0) * self.action_scale_m
        self._send(self._state.ee_pos_m + delta_m)  # the safety filter clips it to the workspace box and speed
        late_s = time.monotonic() - self._deadline_s
        if self._paused:
            self._paused = False
            self._deadline_s, late_s = time.monotonic(), 0.0
        elif late_s > 0:  # the command came after its period ended: re-anchor rather than rush the next ones
            self.missed_deadlines += 1
            self.max_late_ms = max(self.max_late_ms, late_s * 1e3)
            self._deadline_s = time.monotonic()
        else:
            time.sleep(-late_s)
        self._deadline_s += self.period_s
        previous_m = self._state.ee_pos_m
        state = self._read_state()
        now_s = time.monotonic()
        self._periods_ms.append((now_s - self._last_obs_s) * 1e3)
        self._last_obs_s = now_s
        self._state = state
        self.path_length_m += float(np.linalg.norm(state.ee_pos_m - previous_m))
        self._steps += 1
        self.total_steps += 1

        distance_m = self._distance_m()
        success = distance_m < self.success_radius_m
        self.successes += int(success)
        fault = state.fault  # recoverable here (a reflex, a force stop): end the episode, reset() recovers
        terminated = success
        truncated = not terminated and (self._steps >= self.max_episode_steps or fault is not None)
        info = {"is_success": success, "distance_m": distance_m, "missed_deadlines": self.missed_deadlines,
                "fault": None if fault is None else fault.reason}
        return self._observation(), -distance_m / self.reward_length_m, terminated, truncated, info

    def safe_state(self) -> None:
        """Hold the arm where it is (the actor calls this when it must pause); the next step() moves on from there."""
        if self._held is not None:
            try:
                self._held.arm.hold()
            except DeviceError:
                pass  # nothing connected to hold
        self._paused = True  # the step after a pause starts a new period instead of counting a missed one

    # ---- figures and shutdown -----------------------------------------------------------------
    def summary(self) -> dict:
        periods = np.asarray(self._periods_ms) if self._periods_ms else np.zeros(1)
        counters = self._held.arm.counters if self._held is not None else None
        return {
            "robot": self._held.name if self._held is not None else None,
            "control_hz": self.control_hz, "steps": self.total_steps, "episodes": self.episodes,
            "successes": self.successes, "missed_deadlines": self.missed_deadlines,
            "max_late_ms": round(self.max_late_ms, 1),
            "period_ms_p50": round(float(np.percentile(periods, 50)), 1),
            "period_ms_p99": round(float(np.percentile(periods, 99)), 1),
            "path_length_m": round(self.path_length_m, 3),
            "home_return_s_mean": round(float(np.mean(self.home_returns_s)), 2) if self.home_returns_s else None,
            "clipped_workspace": counters.clipped_workspace if counters else None,
            "watchdog_holds": counters.watchdog_holds if counters else None,
        }

    def close(self) -> None:
        _OPEN_ENVS.discard(self)
        if self._held is None:
            return
        if self.total_steps:
            print(SUMMARY_PREFIX + json.dumps(self.summary()), file=sys.stderr, flush=True)
        self._let_go()
