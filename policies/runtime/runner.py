"""The fixed-rate policy loop: absolute deadlines on ``time.monotonic_ns``, deadline statistics, a safe fallback.

Each period: wait for the release time (sleep until ``spin_us`` before it, then spin), read the newest
observation, infer, check the action (finite, computed within the inference budget, from an observation
younger than ``stale_obs_ms``) and apply it, or apply the fallback (hold / zero) and count why. A step
that ends after the next release is a miss; releases already past are skipped, never run in a burst.
A watchdog thread asks the driver for its safe state when no step completes for ``watchdog_ms``.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from policies.export.onnx_export import read_spec
from policies.export.spec import action_dim, layout_mismatches
from policies.runtime.realtime import NoGarbageCollection, apply_realtime, restore_scheduler

FALLBACK_REASONS = ("nan", "stale_obs", "overrun")


class LayoutMismatch(ValueError):
    """The export was trained for a different observation/action layout or rate than this robot's."""


def check_compatible(spec: dict, robot, driver) -> None:
    """Reload safety: refuse an export whose layout or rate does not match the robot, naming each mismatch."""
    provided = driver.layout()
    for key in ("obs_layout", "action_layout"):  # the robot config's own statement wins over the driver's
        if getattr(robot, key) is not None:
            provided[key] = [list(p) for p in getattr(robot, key)]
    problems = layout_mismatches(spec, provided)
    if abs(float(spec.get("control_hz") or 0.0) - robot.control_hz) > 1e-9:
        problems.append(f"control_hz: export {spec.get('control_hz')}, robot {robot.control_hz}")
    if problems:
        raise LayoutMismatch(f"export does not match robot '{robot.name}': " + "; ".join(problems)
                             + ". Export a policy trained for this robot, or fix the robot config.")


class Watchdog:
    """Calls ``on_timeout`` once per stall: no ``kick()`` for ``timeout_ns``; re-arms at the next kick."""

    def __init__(self, timeout_ns: int, on_timeout, poll_s: float = 0.002):
        self.timeout_ns, self.on_timeout, self.poll_s = timeout_ns, on_timeout, poll_s
        self.timeouts = 0
        self._last_kick_ns = time.monotonic_ns()
        self._fired = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="policy-watchdog", daemon=True)

    def kick(self) -> None:
        self._last_kick_ns = time.monotonic_ns()
        self._fired = False

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            if not self._fired and time.monotonic_ns() - self._last_kick_ns > self.timeout_ns:
                self._fired = True
                self.timeouts += 1
                self.on_timeout()

    def __enter__(self) -> "Watchdog":
        self.kick()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _percentiles_us(samples_ns: list[int]) -> dict:
    if not samples_ns:
        return {"p50": None, "p99": None, "max": None}
    p50, p99, top = np.percentile(np.asarray(samples_ns, np.float64), [50, 99, 100]) / 1e3
    return {"p50": round(float(p50), 1), "p99": round(float(p99), 1), "max": round(float(top), 1)}


def _sleep_until(deadline_ns: int, spin_ns: int) -> None:
    remaining_ns = deadline_ns - time.monotonic_ns() - spin_ns
    if remaining_ns > 0:
        time.sleep(remaining_ns / 1e9)
    while time.monotonic_ns() < deadline_ns:  # the last stretch spins: sleep wake-up jitter is ~50-100 us
        pass


class PolicyRunner:
    """Runs ``backend`` against ``driver`` at ``robot.control_hz``; ``run()`` returns the summary dict."""

    def __init__(self, backend, driver, robot, spec: dict | None = None):
        self.backend, self.driver, self.robot = backend, driver, robot
        self.spec = spec if spec is not None else backend.spec
        self.period_ns = round(1e9 / robot.control_hz)
        self.budget_ns = round((robot.inference_budget_ms or robot.period_ms / 2) * 1e6)
        self.stale_ns = round(robot.stale_obs_ms * 1e6)
        self.watchdog_ns = round((robot.watchdog_ms or 3 * robot.period_ms) * 1e6)
        self.spin_ns = round(robot.spin_us * 1e3)
        size = action_dim(self.spec)
        hold = robot.hold_action or [None] * size
        self._hold_mask = np.array([v is None for v in hold])
        self._hold_values = np.array([0.0 if v is None else v for v in hold], np.float32)
        self.last_applied = np.zeros(size, np.float32)
        self._fallback = np.zeros(size, np.float32)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ends ``run()`` after the current step (callable from another thread, e.g. a ROS 2 shutdown)."""
        self._stop.set()

    def live_stats(self, window: int) -> dict:
        """Counters and the last ``window`` samples so far, readable from another thread during ``run()``."""
        return {
            "steps": getattr(self, "_done", 0), "misses": getattr(self, "_misses", 0),
            "skipped_periods": getattr(self, "_skipped", 0), "fallbacks": dict(getattr(self, "_fallbacks", {})),
            "period_error_ns": list(getattr(self, "_period_error_ns", [])[-window:]),
            "inference_ns": list(getattr(self, "_inference_ns", [])[-window:]),
        }

    def fallback_action(self) -> np.ndarray:
        if self.robot.fallback == "zero":
            self._fallback[:] = 0.0
        else:  # hold: the configured values, and the last applied value where none is configured
            np.copyto(self._fallback, np.where(self._hold_mask, self.last_applied, self._hold_values))
        return self._fallback

    def run(self, seconds: float | None = None, steps: int | None = None) -> dict:
        """Connect the driver and act until ``seconds`` / ``steps`` (or ``stop()``); returns the summary."""
        total = steps if steps is not None else (round(seconds * self.robot.control_hz) if seconds else None)
        realtime = apply_realtime(self.robot.cpu, self.robot.realtime_priority)
        self._wake_ns, self._period_error_ns, self._inference_ns = [], [], []
        self._fallbacks = dict.fromkeys(FALLBACK_REASONS, 0)
        self._first_fallbacks: list[dict] = []
        self._misses = self._skipped = self._done = 0
        try:
            with NoGarbageCollection():
                self.driver.connect()  # last thing before the clock starts, so the first observation is fresh
                with Watchdog(self.watchdog_ns, self.driver.request_safe_state) as watchdog:
                    self._loop(total, watchdog)
        finally:
            restore_scheduler()
        return self._summary(realtime, watchdog.timeouts)

    def _loop(self, total: int | None, watchdog: Watchdog) -> None:
        release_ns = time.monotonic_ns()
        while (total is None or self._done < total) and not self._stop.is_set():
            _sleep_until(release_ns, self.spin_ns)
            woke_ns = time.monotonic_ns()
            if self._wake_ns:
                self._period_error_ns.append(abs(woke_ns - self._wake_ns[-1] - self.period_ns))
            self._wake_ns.append(woke_ns)
            obs, stamp_ns = self.driver.read()
            start_ns = time.monotonic_ns()
            action = self.backend.infer(obs)
            end_ns = time.monotonic_ns()
            self._inference_ns.append(end_ns - start_ns)
            reason = None
            if not np.all(np.isfinite(action)):
                reason = "nan"
            elif start_ns - stamp_ns > self.stale_ns:
                reason = "stale_obs"
            elif end_ns - release_ns > self.budget_ns:
                reason = "overrun"
            if reason is not None:
                self._fallbacks[reason] += 1
                if len(self._first_fallbacks) < 20:
                    self._first_fallbacks.append({"step": self._done, "reason": reason})
                action = self.fallback_action()
            self.driver.apply(action)
            np.copyto(self.last_applied, action)
            watchdog.kick()
            self._done += 1
            finished_ns = time.monotonic_ns()
            release_ns += self.period_ns
            if finished_ns > release_ns:  # this step ran into the next period: skip to the next release ahead
                self._misses += 1
                passed = (finished_ns - release_ns) // self.period_ns + 1
                self._skipped += passed
                release_ns += passed * self.period_ns

    def _summary(self, realtime: dict, watchdog_timeouts: int) -> dict:
        wake_ns = self._wake_ns
        return {
            "backend": self.backend.name, "control_hz": self.robot.control_hz, "steps": self._done,
            "seconds": round((wake_ns[-1] - wake_ns[0]) / 1e9 + 1 / self.robot.control_hz, 3) if wake_ns else 0.0,
            "period_error_us": _percentiles_us(self._period_error_ns), "inference_us": _percentiles_us(self._inference_ns),
            "misses": self._misses, "skipped_periods": self._skipped, "fallbacks": self._fallbacks,
            "fallback_action": self.robot.fallback, "first_fallbacks": self._first_fallbacks,
            "watchdog_timeouts": watchdog_timeouts,
            "driver_safe_state_requests": getattr(self.driver, "safe_state_requests", None),
            "episodes": getattr(self.driver, "episodes", None), "realtime": realtime,
            "export_sha256": self.spec.get("sha256"), "policy_version": self.spec.get("policy_version"),
        }


def open_export(export: str | Path) -> Path:
    """An export directory (``policy.onnx`` inside) or the ``.onnx`` file itself."""
    path = Path(export)
    onnx_path = path / "policy.onnx" if path.is_dir() else path
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path} does not exist: pass a directory written by robot-rl export, or its policy.onnx.")
    read_spec(onnx_path)  # refuses files without our spec
    return onnx_path
