"""Per-robot safety: a command filter, a command watchdog, and `SafeArm`, an `Arm` that applies both.

The filter clips pose targets to the workspace box and limits end-effector speed and acceleration
(targets are advanced at most `max_speed_m_s * dt` per command, decelerating in time to stop at the
target), rejects NaN/inf (the last good command is kept and the rejection counted), and stops the arm
when the external force exceeds `max_force_n`. The watchdog puts the arm in its safe state (`hold()`)
when no fresh valid command arrived within `command_timeout_ms`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from drivers.arms.base import Arm, ArmFault, ArmMode, ArmState, now_ns
from drivers.arms.rotations import slerp_limited
from drivers.errors import DeviceError

Vec3 = tuple[float, float, float]


class SafetyConfigError(DeviceError):
    """A safety file that cannot be used; the message names the file and the field."""


class SafetyConfig(BaseModel):
    """Limits for one robot; the defaults suit a Franka on a table doing pick-and-place at 10 Hz."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workspace_box_m: tuple[Vec3, Vec3] = Field(
        default=((0.3, -0.3, 0.05), (0.75, 0.3, 0.6)), description="(min xyz, max xyz) of the TCP in the base frame"
    )
    max_speed_m_s: float = Field(default=0.25, gt=0, description="TCP linear speed limit")
    max_angular_speed_rad_s: float = Field(default=1.0, gt=0, description="TCP angular speed limit")
    max_accel_m_s2: float = Field(default=2.0, gt=0, description="TCP linear acceleration limit")
    max_joint_speed_rad_s: float = Field(default=1.0, gt=0, description="per-joint limit for joint-velocity commands")
    max_force_n: float = Field(default=30.0, gt=0, description="external force at the TCP that stops the arm")
    command_timeout_ms: float = Field(default=250.0, gt=0, description="no valid command for this long -> hold()")
    command_rate_hz: float = Field(default=10.0, gt=0, description="policy rate; the first command after a stop is limited as one period's step")
    monitor_period_ms: float = Field(default=5.0, gt=0, description="how often the watchdog checks time and force")

    @model_validator(mode="after")
    def _box_is_ordered(self) -> "SafetyConfig":
        low, high = np.asarray(self.workspace_box_m[0]), np.asarray(self.workspace_box_m[1])
        if not np.all(low < high):
            raise ValueError(f"workspace_box_m: every min {tuple(low)} must be below its max {tuple(high)}")
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SafetyConfig":
        import yaml

        path = Path(path)
        try:
            return cls.model_validate(yaml.safe_load(path.read_text()) or {})
        except FileNotFoundError:
            raise SafetyConfigError(f"safety file {path} does not exist; create it or fix the path.") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise SafetyConfigError(f"{path}: field '{where}': {err['msg']}; fix that value.") from None

    @property
    def box_low_m(self) -> np.ndarray:
        return np.asarray(self.workspace_box_m[0], dtype=float)

    @property
    def box_high_m(self) -> np.ndarray:
        return np.asarray(self.workspace_box_m[1], dtype=float)


@dataclass
class SafetyCounters:
    rejected_nonfinite: int = 0
    clipped_workspace: int = 0
    limited_speed: int = 0
    limited_accel: int = 0
    force_stops: int = 0
    rejected_while_stopped: int = 0
    watchdog_holds: int = 0
    last_force_stop_ns: int | None = None
    last_force_n: float = 0.0


@dataclass
class SafetyFilter:
    """Stateful limits on a command stream; call `reset()` with the measured pose whenever the arm stopped."""

    config: SafetyConfig
    counters: SafetyCounters = field(default_factory=SafetyCounters)
    _pos_m: np.ndarray | None = None  # last filtered pose target
    _quat_xyzw: np.ndarray | None = None
    _vel_m_s: np.ndarray = field(default_factory=lambda: np.zeros(3))  # of the target, or last twist
    _last_ns: int | None = None

    @property
    def last_target_m(self) -> np.ndarray | None:
        """The last pose target let through (what a rejected command leaves the arm heading for)."""
        return None if self._pos_m is None else self._pos_m.copy()

    def reset(self, ee_pos_m: np.ndarray, ee_quat_xyzw: np.ndarray) -> None:
        self._pos_m = np.array(ee_pos_m, dtype=float)
        self._quat_xyzw = np.array(ee_quat_xyzw, dtype=float)
        self._vel_m_s = np.zeros(3)
        self._last_ns = None

    def _dt_s(self, stamp_ns: int) -> float:
        # a gap longer than the watchdog timeout means the arm was held: no larger step than that
        timeout_s = self.config.command_timeout_ms / 1e3
        dt = 1.0 / self.config.command_rate_hz if self._last_ns is None else (stamp_ns - self._last_ns) / 1e9
        self._last_ns = stamp_ns
        return float(np.clip(dt, 1e-3, timeout_s))

    def _limit_velocity(self, v_want: np.ndarray, dt: float) -> np.ndarray:
        cfg = self.config
        speed = np.linalg.norm(v_want)
        if speed > cfg.max_speed_m_s:
            v_want = v_want * (cfg.max_speed_m_s / speed)
            self.counters.limited_speed += 1
        dv = v_want - self._vel_m_s
        dv_norm = np.linalg.norm(dv)
        if dv_norm > cfg.max_accel_m_s2 * dt:
            v_want = self._vel_m_s + dv * (cfg.max_accel_m_s2 * dt / dv_norm)
            self.counters.limited_accel += 1
        return v_want

    def _clip_box(self, pos_m: np.ndarray) -> np.ndarray:
        clipped = np.clip(pos_m, self.config.box_low_m, self.config.box_high_m)
        if not np.array_equal(clipped, pos_m):
            self.counters.clipped_workspace += 1
        return clipped

    def pose(self, ee_pos_m, ee_quat_xyzw, stamp_ns: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The target to send, or None when the command is rejected (non-finite)."""
        ee_pos_m, ee_quat_xyzw = np.asarray(ee_pos_m, dtype=float), np.asarray(ee_quat_xyzw, dtype=float)
        if ee_pos_m.shape != (3,) or ee_quat_xyzw.shape != (4,) or not (np.all(np.isfinite(ee_pos_m)) and np.all(np.isfinite(ee_quat_xyzw))) or np.linalg.norm(ee_quat_xyzw) < 1e-6:
            self.counters.rejected_nonfinite += 1
            return None
        if self._pos_m is None:
            raise DeviceError("SafetyFilter.reset() must be called with the measured pose before the first command.")
        dt = self._dt_s(stamp_ns)
        target = self._clip_box(ee_pos_m)
        to_go = target - self._pos_m
        distance = float(np.linalg.norm(to_go))
        # fastest speed from which the target can still be reached without overshoot at max_accel
        stop_speed = np.sqrt(2.0 * self.config.max_accel_m_s2 * distance)
        speed = min(distance / dt, stop_speed) if distance > 0 else 0.0
        v_want = to_go / distance * speed if distance > 0 else np.zeros(3)
        self._vel_m_s = self._limit_velocity(v_want, dt)
        self._pos_m = self._clip_box(self._pos_m + self._vel_m_s * dt) if distance > 0 else self._pos_m
        self._quat_xyzw, limited = slerp_limited(self._quat_xyzw, ee_quat_xyzw, self.config.max_angular_speed_rad_s * dt)
        self.counters.limited_speed += int(limited)
        return self._pos_m.copy(), self._quat_xyzw.copy()

    def twist(self, twist, ee_pos_m: np.ndarray, stamp_ns: int) -> np.ndarray | None:
        twist = np.asarray(twist, dtype=float)
        if twist.shape != (6,) or not np.all(np.isfinite(twist)):
            self.counters.rejected_nonfinite += 1
            return None
        dt = self._dt_s(stamp_ns)
        v = self._limit_velocity(twist[:3].copy(), dt)
        # no velocity that would carry the TCP out of the box within one step
        low, high = self.config.box_low_m, self.config.box_high_m
        room_up, room_down = (high - ee_pos_m) / dt, (low - ee_pos_m) / dt
        v_boxed = np.clip(v, np.minimum(room_down, 0.0), np.maximum(room_up, 0.0))
        if not np.array_equal(v_boxed, v):
            self.counters.clipped_workspace += 1
        self._vel_m_s = v_boxed
        w = twist[3:]
        w_norm = np.linalg.norm(w)
        if w_norm > self.config.max_angular_speed_rad_s:
            w = w * (self.config.max_angular_speed_rad_s / w_norm)
            self.counters.limited_speed += 1
        return np.concatenate([v_boxed, w])

    def joint_velocity(self, joint_vel_rad_s, ee_pos_m: np.ndarray) -> np.ndarray | None:
        dq = np.asarray(joint_vel_rad_s, dtype=float)
        if dq.shape != (7,) or not np.all(np.isfinite(dq)):
            self.counters.rejected_nonfinite += 1
            return None
        limit = self.config.max_joint_speed_rad_s
        if np.any(np.abs(dq) > limit):
            self.counters.limited_speed += 1
            dq = np.clip(dq, -limit, limit)
        # joint space has no cheap box projection: outside the box, joint velocity stops
        if np.any(ee_pos_m < self.config.box_low_m) or np.any(ee_pos_m > self.config.box_high_m):
            self.counters.clipped_workspace += 1
            return np.zeros(7)
        return dq

    def force_exceeded(self, state: ArmState) -> bool:
        return state.ee_force_n > self.config.max_force_n


class Watchdog:
    """A thread that calls `on_timeout` once when `kick()` was not called for `timeout_ms`.

    It re-arms at the next kick. `on_tick` (optional) runs every period, e.g. to poll a force sensor.
    """

    def __init__(self, timeout_ms: float, on_timeout: Callable[[], None], period_ms: float = 5.0, on_tick: Callable[[], None] | None = None):
        self.timeout_ms = timeout_ms
        self.period_ms = period_ms
        self._on_timeout = on_timeout
        self._on_tick = on_tick
        self._last_kick_ns: int | None = None
        self._armed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.timeouts = 0
        self.last_timeout_ns: int | None = None
        self.last_fire_delay_ms: float | None = None  # last kick -> timeout noticed
        self.last_latency_ms: float | None = None  # last kick -> on_timeout() returned (the arm is held)
        self.errors = 0

    def kick(self) -> None:
        self._last_kick_ns = now_ns()
        self._armed = True

    def start(self) -> "Watchdog":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "Watchdog":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.period_ms / 1e3):
            try:
                if self._on_tick is not None:
                    self._on_tick()
                last = self._last_kick_ns
                if self._armed and last is not None and now_ns() - last > self.timeout_ms * 1e6:
                    self._armed = False
                    self.timeouts += 1
                    self.last_timeout_ns = now_ns()
                    self.last_fire_delay_ms = (self.last_timeout_ns - last) / 1e6
                    self._on_timeout()
                    self.last_latency_ms = (now_ns() - last) / 1e6
            except Exception:  # the monitor must outlive a failing device call; the count shows it
                self.errors += 1


class SafeArm(Arm):
    """An `Arm` around an `Arm`: every command passes the `SafetyFilter`, and a `Watchdog` holds the arm
    when commands stop or the external force exceeds the limit. A force stop latches (the state shows an
    `ArmFault`) until `recover()`; after a recovery the force limit re-arms once the force has dropped."""

    def __init__(self, arm: Arm, config: SafetyConfig):
        self.arm = arm
        self.config = config
        self.filter = SafetyFilter(config)
        self.counters = self.filter.counters
        self.watchdog = Watchdog(config.command_timeout_ms, self._on_timeout, config.monitor_period_ms, self._check_force)
        self._lock = threading.RLock()
        self._stopped: ArmFault | None = None
        self._force_armed = True
        self._needs_reset = True
        self._resend: Callable[[], None] | None = None  # re-issues the last good command
        self.last_hold_done_ns: int | None = None

    @property
    def gripper(self):
        return self.arm.gripper

    def connect(self) -> None:
        self.arm.connect()
        self.watchdog.start()

    def close(self) -> None:
        self.watchdog.stop()
        self.arm.close()

    # ---- monitoring -----------------------------------------------------------------------
    def _on_timeout(self) -> None:
        with self._lock:
            self.counters.watchdog_holds += 1
            self._hold_now()

    def _hold_now(self) -> None:
        self.arm.hold()
        self._needs_reset = True
        self._resend = None
        self.last_hold_done_ns = now_ns()

    def _check_force(self) -> ArmState:
        state = self.arm.state()
        force_n = state.ee_force_n
        with self._lock:  # the watchdog thread and the actor both check
            if not self._force_armed:
                self._force_armed = force_n < 0.8 * self.config.max_force_n  # hysteresis: re-arm once clear of contact
            elif self._stopped is None and self.filter.force_exceeded(state):
                self.counters.force_stops += 1
                self.counters.last_force_stop_ns = state.stamp_ns
                self.counters.last_force_n = force_n
                self._stopped = ArmFault(
                    f"external force {force_n:.0f} N exceeded max_force_n={self.config.max_force_n:.0f} N; clear the contact and call recover()",
                    state.stamp_ns,
                    recoverable=True,
                )
                self._force_armed = False
                self._hold_now()
        return state

    def recover(self) -> bool:
        with self._lock:
            self._stopped = None
            self._needs_reset = True
            return self.arm.recover()

    # ---- Arm ----------------------------------------------------------------------------------
    def state(self) -> ArmState:
        state = self._check_force()
        if self._stopped is not None:
            return replace(state, mode=ArmMode.FAULT, fault=self._stopped)
        return state

    def hold(self) -> None:
        with self._lock:
            self._hold_now()

    def _command(self, filtered: Callable[[ArmState, int], Callable[[], None] | None]) -> bool:
        """Run one command through the filter; returns False if it was not sent as given."""
        with self._lock:
            if self._stopped is not None:
                self.counters.rejected_while_stopped += 1
                return False
            state = self._check_force()
            if self._stopped is not None:
                self.counters.rejected_while_stopped += 1
                return False
            if self._needs_reset:
                self.filter.reset(state.ee_pos_m, state.ee_quat_xyzw)
                self._needs_reset = False
            send = filtered(state, now_ns())
            if send is None:  # rejected: keep the last good command going, but do not feed the watchdog
                if self._resend is not None:
                    self._resend()
                return False
            send()
            self._resend = send
            self.watchdog.kick()
            return True

    def command_pose(self, ee_pos_m, ee_quat_xyzw) -> bool:
        def filtered(state: ArmState, stamp_ns: int):
            target = self.filter.pose(ee_pos_m, ee_quat_xyzw, stamp_ns)
            return None if target is None else (lambda: self.arm.command_pose(*target))

        return self._command(filtered)

    def command_cartesian_velocity(self, twist) -> bool:
        def filtered(state: ArmState, stamp_ns: int):
            safe = self.filter.twist(twist, state.ee_pos_m, stamp_ns)
            return None if safe is None else (lambda: self.arm.command_cartesian_velocity(safe))

        return self._command(filtered)

    def command_joint_velocity(self, joint_vel_rad_s) -> bool:
        def filtered(state: ArmState, stamp_ns: int):
            safe = self.filter.joint_velocity(joint_vel_rad_s, state.ee_pos_m)
            return None if safe is None else (lambda: self.arm.command_joint_velocity(safe))

        return self._command(filtered)
