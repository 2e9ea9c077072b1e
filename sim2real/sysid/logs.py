"""Logged trajectories for system identification: uniform-rate states and the commands between them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class TrajectoryLog:
    """`states[t]` is measured at `t * dt_s`; `actions[t]` is the command held from t to t + 1.

    `state_names` and `action_names` say what the columns are (e.g. "position_m_x").
    """

    states: np.ndarray  # (T + 1, S)
    actions: np.ndarray  # (T, A)
    dt_s: float
    state_names: list[str] = field(default_factory=list)
    action_names: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.states = np.asarray(self.states, np.float64)
        self.actions = np.asarray(self.actions, np.float64)
        if self.states.ndim != 2 or self.actions.ndim != 2 or len(self.states) != len(self.actions) + 1:
            raise ValueError(
                f"a trajectory log needs states (T+1, S) and actions (T, A), got {self.states.shape} and "
                f"{self.actions.shape}: log the state after the last command too."
            )
        if not self.dt_s > 0:
            raise ValueError(f"dt_s must be > 0, got {self.dt_s}.")
        if not (np.isfinite(self.states).all() and np.isfinite(self.actions).all()):
            raise ValueError("the log holds NaN or inf: cut those samples out before fitting.")

    @property
    def num_steps(self) -> int:
        return len(self.actions)

    @property
    def duration_s(self) -> float:
        return self.num_steps * self.dt_s

    def save_npz(self, path) -> None:
        np.savez(path, states=self.states, actions=self.actions, dt_s=self.dt_s,
                 state_names=np.array(self.state_names, dtype=str), action_names=np.array(self.action_names, dtype=str))

    @classmethod
    def load_npz(cls, path) -> "TrajectoryLog":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no trajectory log at {path}: record one first, or check the path.")
        with np.load(path, allow_pickle=False) as data:
            missing = {"states", "actions", "dt_s"} - set(data.files)
            if missing:
                raise ValueError(f"{path} lacks {sorted(missing)}: a trajectory log needs states, actions and dt_s.")
            names = {k: [str(n) for n in data[k]] for k in ("state_names", "action_names") if k in data.files}
            return cls(data["states"], data["actions"], float(data["dt_s"]), **names)

    @classmethod
    def from_timestamped(cls, time_s, states, actions, **names) -> "TrajectoryLog":
        """From samples stamped `time_s` (e.g. a run store); the stamps must be uniform within 1%."""
        time_s = np.asarray(time_s, np.float64)
        steps = np.diff(time_s)
        dt_s = float(np.median(steps))
        if len(steps) == 0 or np.abs(steps - dt_s).max() > 0.01 * dt_s:
            raise ValueError("the log's time stamps are not uniform: resample it to a fixed rate before fitting.")
        return cls(states, np.asarray(actions)[: len(time_s) - 1], dt_s, **names)
