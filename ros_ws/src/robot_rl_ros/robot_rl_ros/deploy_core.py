"""What deploy_node runs: `PolicyRunner` (policies/runtime) in its own thread, with an e-stop gate and an action tap.

The runner keeps its own clock and deadline statistics; ROS only watches: the tap hands each applied
action to a callback, the gate swaps the policy's action for the runner's fallback while the e-stop is
engaged (inference still runs, so the inference statistics stay those of the real policy), and
`live_stats()` reads the runner's sample lists for /diagnostics while it runs.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

LIVE_WINDOW = 1000  # samples behind the live percentiles: the last 1000 periods


class EstopGate:
    """Backend wrapper: the real policy's action, or the runner's fallback (hold/zero) while engaged."""

    def __init__(self, backend):
        self.backend = backend
        self.name, self.spec = backend.name, backend.spec
        self.engaged = False
        self.held_steps = 0
        self.runner = None  # set once the runner exists: the fallback is the runner's own

    def infer(self, obs):
        action = self.backend.infer(obs)
        if not self.engaged:
            return action
        self.held_steps += 1
        return self.runner.fallback_action()


class ActionTap:
    """Driver wrapper: applies the action, then hands a copy and its monotonic stamp to `on_action`."""

    def __init__(self, driver, on_action):
        self.driver, self.on_action = driver, on_action

    def apply(self, action) -> None:
        self.driver.apply(action)
        self.on_action(np.array(action, np.float32), time.monotonic_ns())

    def __getattr__(self, name):  # read, connect, request_safe_state, episodes, ...
        return getattr(self.driver, name)


def _percentiles_us(samples_ns: list) -> tuple[float, float]:
    if not samples_ns:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(np.asarray(samples_ns, np.float64), [50, 99]) / 1e3
    return float(p50), float(p99)


class DeployCore:
    """Builds the runner for `export` on the robot in `robot_path`, runs it in a thread, reports on it."""

    def __init__(self, export: str | Path, robot_path: str | Path, backend: str = "onnxruntime", on_action=None):
        from robot_rl.commands.deploy import make_runner

        self.runner, self.driver = make_runner(export, robot_path, backend)
        self.gate = EstopGate(self.runner.backend)
        self.gate.runner = self.runner
        self.runner.backend = self.gate
        self.runner.driver = ActionTap(self.driver, on_action or (lambda action, stamp_ns: None))
        self.spec, self.robot = self.runner.spec, self.runner.robot
        self.summary: dict | None = None
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    @property
    def action_layout(self) -> list:
        return [tuple(part) for part in self.spec.get("action_layout") or []]

    def set_estop(self, engaged: bool) -> None:
        self.gate.engaged = engaged

    def start(self, seconds: float | None, on_done=None) -> None:
        """Run for `seconds` (None: until `stop()`); `on_done(summary_or_None, error_or_None)` from the runner thread."""

        def work():
            try:
                summary = self.runner.run(seconds=seconds)
                summary["fallbacks"]["estop"] = self.gate.held_steps
                self.summary = summary
            except BaseException as err:  # reported on /diagnostics and in the log, never swallowed
                self.error = err
            if on_done is not None:
                on_done(self.summary, self.error)

        self._thread = threading.Thread(target=work, name="policy-runner", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def live_stats(self) -> dict[str, object]:
        """The runner's deadline statistics so far (percentiles over the last LIVE_WINDOW periods)."""
        runner = self.runner
        live = runner.live_stats(LIVE_WINDOW)
        period_p50, period_p99 = _percentiles_us(live["period_error_ns"])
        infer_p50, infer_p99 = _percentiles_us(live["inference_ns"])
        stats: dict[str, object] = {
            "steps": live["steps"], "misses": live["misses"], "skipped_periods": live["skipped_periods"],
            "period_error_us.p50": f"{period_p50:.1f}", "period_error_us.p99": f"{period_p99:.1f}",
            "inference_us.p50": f"{infer_p50:.1f}", "inference_us.p99": f"{infer_p99:.1f}",
            "control_hz": runner.robot.control_hz, "estop": self.gate.engaged,
        }
        fallbacks = live["fallbacks"]
        fallbacks["estop"] = self.gate.held_steps
        stats.update({f"fallbacks.{reason}": n for reason, n in fallbacks.items()})
        return stats

    def stop(self, timeout_s: float = 5.0) -> dict | None:
        """End the run after its current step, wait for the summary, release the driver."""
        self.runner.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.driver.close()
        return self.summary
