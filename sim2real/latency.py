"""Latency models as gymnasium wrappers: observation delay, action delay, per-step jitter.

A delay is given in milliseconds and converted to control periods: ``delay_ms = (n + f) * period``
with ``n`` whole steps and a fraction ``f`` in [0, 1).

- ``ObservationDelay``: the policy sees the state from ``delay_ms`` ago; the fractional part is
  a linear interpolation between the two stored samples around it (float arrays) or a hold of
  the older one (images, integers, or ``fractional="hold"``).
- ``ActionDelay``: the action sent at step ``t`` reaches the plant ``delay_ms`` later, so during
  period ``t`` the plant runs ``a[t-n-1]`` for the first ``f`` of the period and ``a[t-n]``
  for the rest. Splitting the period needs the env's substep hook (see ``ActionSplitHook``);
  without it the fraction is approximated by blending the two actions (``"blend"``, exact for
  plants that integrate a held action linearly) or by rounding to whole steps (``"round"``).
- ``Jitter``: a fresh random delay each step, drawn from a range or from delays measured on the
  real-time runner (``policies/runtime/runner.py``), applied to the action or the observation.

Put ``ActionDelay``/``Jitter(on="action")`` directly on the env (innermost): the hook receives
the previous action as it was sent, so action-transforming wrappers between them would be skipped.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Protocol

import gymnasium as gym
import numpy as np


class ActionSplitHook(Protocol):
    """What an env offers so a delay can split its control period between two actions.

    ``set_delayed_action(previous_action, fraction)``: during the next ``step(action)`` only, run
    ``previous_action`` for the first ``fraction`` of the period (rounded to physics substeps),
    then ``action``.
    """

    def set_delayed_action(self, previous_action: np.ndarray, fraction: float) -> None: ...


def env_control_period_s(env: gym.Env, given_s: float | None = None) -> float:
    """The env's control period: `given_s`, else `control_period_s` or `dt` on the unwrapped env."""
    if given_s is not None:
        period = float(given_s)
    else:
        base = env.unwrapped
        period = getattr(base, "control_period_s", None) or getattr(base, "dt", None)
        task = getattr(base, "task", None)
        if period is None and task is not None:
            period = getattr(task, "dt_s", None)
        if period is None:
            raise ValueError(
                f"{type(base).__name__} does not say its control period: pass control_period_s= to the wrapper."
            )
    if not period > 0:
        raise ValueError(f"control_period_s must be > 0, got {period}.")
    return float(period)


def split_delay(delay_ms: float, period_s: float) -> tuple[int, float]:
    """(whole steps, fraction of a step) in ``delay_ms``; fractions within 1e-9 of a step snap to it."""
    if not delay_ms >= 0:
        raise ValueError(f"delay_ms must be >= 0, got {delay_ms}.")
    steps = delay_ms / 1000.0 / period_s
    whole = math.floor(steps + 1e-9)
    fraction = steps - whole
    return whole, (0.0 if fraction < 1e-9 else fraction)


def _interpolate(newer, older, fraction: float, hold: bool):
    """The signal `fraction` of a step before `newer`; `older` is one step before it."""
    if fraction == 0.0:
        return newer
    if isinstance(newer, dict):
        return {k: _interpolate(newer[k], older[k], fraction, hold) for k in newer}
    newer_arr = np.asarray(newer)
    if hold or not np.issubdtype(newer_arr.dtype, np.floating):
        return older  # a sample taken between two frames is not there yet: the older frame is
    return ((1.0 - fraction) * newer_arr + fraction * np.asarray(older)).astype(newer_arr.dtype)


def _copy(obs):
    return {k: np.array(v, copy=True) for k, v in obs.items()} if isinstance(obs, dict) else np.array(obs, copy=True)


class _ObservationHistory:
    """The last `length` observations, newest last, filled with the first one at reset."""

    def __init__(self, length: int):
        self._samples = deque(maxlen=length)

    def reset(self, obs) -> None:
        self._samples.clear()
        self._samples.extend(_copy(obs) for _ in range(self._samples.maxlen))

    def push(self, obs) -> None:
        self._samples.append(_copy(obs))

    def delayed(self, whole: int, fraction: float, hold: bool):
        newer = self._samples[-1 - whole]
        older = self._samples[-2 - whole] if fraction > 0.0 else newer
        return _interpolate(newer, older, fraction, hold)


class _ActionApplier:
    """Runs a control period as `previous` for `fraction` of it, then `action`."""

    MODES = ("auto", "hook", "blend", "round")

    def __init__(self, env: gym.Env, mode: str):
        if mode not in self.MODES:
            raise ValueError(f"fractional must be one of {self.MODES}, not {mode!r}.")
        has_hook = callable(getattr(env.unwrapped, "set_delayed_action", None))
        if mode == "hook" and not has_hook:
            raise ValueError(
                f"{type(env.unwrapped).__name__} has no set_delayed_action hook: use fractional='blend' or 'round'."
            )
        self.mode = "hook" if mode == "auto" and has_hook else ("blend" if mode == "auto" else mode)
        self._env = env

    def step(self, previous: np.ndarray, action: np.ndarray, fraction: float):
        """Returns what env.step returns; `fraction` of the period still runs `previous`."""
        if fraction == 0.0:
            return self._env.step(action)
        if self.mode == "hook":
            self._env.unwrapped.set_delayed_action(previous, fraction)
            return self._env.step(action)
        if self.mode == "round":
            return self._env.step(previous if fraction >= 0.5 else action)
        blended = (fraction * np.asarray(previous, np.float64) + (1.0 - fraction) * np.asarray(action, np.float64))
        return self._env.step(blended.astype(np.asarray(action).dtype))


class ObservationDelay(gym.Wrapper):
    """The policy sees the observation from `delay_ms` ago (interpolated, or held with fractional='hold')."""

    def __init__(self, env: gym.Env, delay_ms: float, *, control_period_s: float | None = None,
                 fractional: str = "interpolate"):
        super().__init__(env)
        if fractional not in ("interpolate", "hold"):
            raise ValueError(f"fractional must be 'interpolate' or 'hold', not {fractional!r}.")
        self.period_s = env_control_period_s(env, control_period_s)
        self.delay_ms = float(delay_ms)
        self.whole_steps, self.fraction = split_delay(self.delay_ms, self.period_s)
        self._hold = fractional == "hold"
        self._history = _ObservationHistory(self.whole_steps + 2)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._history.reset(obs)
        return self._delayed(), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._history.push(obs)
        return self._delayed(), reward, terminated, truncated, info

    def _delayed(self):
        return self._history.delayed(self.whole_steps, self.fraction, self._hold)


class ActionDelay(gym.Wrapper):
    """The action sent at step t reaches the env `delay_ms` later; before the first one, `initial_action` runs."""

    def __init__(self, env: gym.Env, delay_ms: float, *, control_period_s: float | None = None,
                 fractional: str = "auto", initial_action=None):
        super().__init__(env)
        self.period_s = env_control_period_s(env, control_period_s)
        self.delay_ms = float(delay_ms)
        self.whole_steps, self.fraction = split_delay(self.delay_ms, self.period_s)
        self._applier = _ActionApplier(env, fractional)
        self.fractional = self._applier.mode
        shape = env.action_space.shape
        self._initial = np.zeros(shape, np.float32) if initial_action is None else np.asarray(initial_action)
        if self._initial.shape != shape:
            raise ValueError(f"initial_action must have the action shape {shape}, got {self._initial.shape}.")
        self._sent = deque(maxlen=self.whole_steps + 2)  # newest last

    def reset(self, *, seed=None, options=None):
        self._sent.clear()
        self._sent.extend(self._initial.copy() for _ in range(self._sent.maxlen))
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        self._sent.append(np.array(action, copy=True))
        current = self._sent[-1 - self.whole_steps]
        previous = self._sent[-2 - self.whole_steps]
        return self._applier.step(previous, current, self.fraction)


class Jitter(gym.Wrapper):
    """A random delay each step, below one control period, on the action (default) or the observation.

    Give `delays_ms` as a (low, high) range for a uniform draw, or as an array of measured delays
    (e.g. the runner's inference times) to resample from. Put whole-step latency in
    `ActionDelay`/`ObservationDelay` and only the varying part here.
    """

    def __init__(self, env: gym.Env, delays_ms, *, on: str = "action", seed: int | None = None,
                 control_period_s: float | None = None, fractional: str = "auto"):
        super().__init__(env)
        if on not in ("action", "observation"):
            raise ValueError(f"on must be 'action' or 'observation', not {on!r}.")
        self.on = on
        self.period_s = env_control_period_s(env, control_period_s)
        delays = np.asarray(delays_ms, np.float64).ravel()
        if delays.size == 0 or not np.all(np.isfinite(delays)) or delays.min() < 0:
            raise ValueError("delays_ms must be a (low, high) range or measured delays, all finite and >= 0.")
        if delays.max() >= 1000.0 * self.period_s:
            raise ValueError(
                f"jitter of {delays.max():g} ms reaches a whole {1000 * self.period_s:g} ms control period: "
                "move the constant part into ActionDelay/ObservationDelay."
            )
        self._uniform = isinstance(delays_ms, tuple) and len(delays_ms) == 2
        if self._uniform and delays[0] > delays[1]:
            raise ValueError(f"delays_ms range must be (low, high) with low <= high, got {delays_ms}.")
        self._delays_ms = delays
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self.last_delay_ms = 0.0
        if on == "action":
            self._applier = _ActionApplier(env, fractional)
            self._previous = np.zeros(env.action_space.shape, np.float32)
        else:
            self._history = _ObservationHistory(2)

    def sample_delay_ms(self) -> float:
        if self._uniform:
            return float(self._rng.uniform(self._delays_ms[0], self._delays_ms[1]))
        return float(self._rng.choice(self._delays_ms))

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0x717])  # own stream, reproducible per episode seed
        obs, info = self.env.reset(seed=seed, options=options)
        if self.on == "action":
            self._previous = np.zeros(self.env.action_space.shape, np.float32)
            return obs, info
        self._history.reset(obs)
        return _copy(obs), info

    def step(self, action):
        self.last_delay_ms = self.sample_delay_ms()
        fraction = self.last_delay_ms / 1000.0 / self.period_s
        if self.on == "action":
            result = self._applier.step(self._previous, action, fraction)
            self._previous = np.array(action, copy=True)
            return result
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._history.push(obs)
        return self._history.delayed(0, fraction, hold=False), reward, terminated, truncated, info


class VecActionDelay:
    """Whole-step action delay for a same-step-autoreset vector env (e.g. ``VecQuadrotorHover``).

    `delay_ms` is one delay for every env, or a (low, high) range: each env then draws its delay
    uniformly from the whole steps in that range at every reset (delay randomization for training).
    Each env's queue restarts with `initial_action` when its episode ends. If the observation
    carries the env's own action history (`history_columns`, oldest first, newest last), those
    columns are rewritten with the actions as sent, as a real vehicle's policy remembers them:
    otherwise the actions still in flight would be missing from it.
    """

    def __init__(self, env, delay_ms: float | tuple[float, float], *, control_period_s: float,
                 initial_action: float = 0.0, history_columns: slice | None = None,
                 critic_key: str | None = "critic_obs", seed: int | None = None):
        bounds = tuple(delay_ms) if isinstance(delay_ms, (tuple, list)) else (delay_ms, delay_ms)
        steps = []
        for bound in bounds:
            whole, fraction = split_delay(bound, control_period_s)
            if fraction:
                raise ValueError(
                    f"VecActionDelay delays by whole steps: {bound} ms is not a multiple of the "
                    f"{1000 * control_period_s:g} ms period; round it or use ActionDelay on a single env."
                )
            steps.append(whole)
        if len(steps) != 2 or steps[0] > steps[1]:
            raise ValueError(f"delay_ms must be a delay or a (low, high) range with low <= high, got {delay_ms}.")
        self.env, self.delay_range_steps = env, (steps[0], steps[1])
        self.delay_steps = steps[1]  # the longest delay (the only one when delay_ms is a single value)
        self.num_envs = env.num_envs
        self.action_space, self.observation_space = env.action_space, env.observation_space
        self._initial = float(initial_action)
        self._rng = np.random.default_rng(seed)
        # sent actions, newest first: the plant runs _pending[delay of env i, i]
        self._pending = np.full((steps[1] + 1, env.num_envs, *env.single_action_space.shape), self._initial)
        self.env_delay_steps = np.full(env.num_envs, steps[1])
        self._history_columns, self._critic_key = history_columns, critic_key
        self._sent_history = None

    def _draw_delays(self, ids) -> None:
        low, high = self.delay_range_steps
        self.env_delay_steps[ids] = self._rng.integers(low, high + 1, np.size(ids)) if high > low else high

    def __getattr__(self, name):
        return getattr(self.env, name)

    @property
    def actor_obs(self) -> np.ndarray:
        """The wrapped env's current actor observation with the actions as sent in its history columns."""
        obs = self.env.actor_obs
        if self._history_columns is None:
            return obs
        obs = obs.copy()
        obs[:, self._history_columns] = self._sent_history
        return obs

    @property
    def sent_history(self) -> np.ndarray | None:
        """(N, history width) the actions as sent, oldest first; None without `history_columns`."""
        return None if self._sent_history is None else self._sent_history.copy()

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, 1])  # not the env's own stream
        self._pending[:] = self._initial
        self._draw_delays(np.arange(self.num_envs))
        obs, info = self.env.reset(seed=seed, options=options)
        if self._history_columns is not None:
            self._sent_history = np.array(obs[:, self._history_columns], copy=True)
        return obs, info

    def step(self, actions):
        actions = np.asarray(actions, np.float64)
        if self.delay_steps == 0:
            return self.env.step(actions)
        self._pending[1:] = self._pending[:-1]
        self._pending[0] = actions
        applied = self._pending[self.env_delay_steps, np.arange(self.num_envs)]
        obs, reward, terminated, truncated, info = self.env.step(applied)
        done = terminated | truncated
        if done.any():  # autoreset: a new episode has nothing in flight, and its own delay
            self._pending[:, done] = self._initial
            self._draw_delays(np.flatnonzero(done))
        if self._history_columns is not None:
            self._rewrite_history(actions, obs, info, done)
        return obs, reward, terminated, truncated, info

    def _rewrite_history(self, sent, obs, info, done) -> None:
        history, columns = self._sent_history, self._history_columns
        width = sent.shape[1]
        history[:, :-width] = history[:, width:]
        history[:, -width:] = sent
        for key in ("final_obs", "final_critic_obs"):  # the finished episodes' last observations
            if key in info:
                info[key][:, columns] = history
        if done.any():  # reset envs start from the env's own initial history
            history[done] = obs[done, columns]
        obs[:, columns] = history
        if self._critic_key and self._critic_key in info:
            info[self._critic_key][:, columns] = history
