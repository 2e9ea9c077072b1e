"""Robot drivers the runner acts through: ``read()`` the newest stamped observation, ``apply(action)``.

``GymDriver`` is the simulated twin: one ``env.step`` per control period runs that period's physics,
so the loop around it runs in real time. ``request_safe_state()`` is called from the watchdog
thread when the loop stalls; a hardware driver holds in its own controller there, the simulated twin
(paused while the loop is) only counts it, and the runner applies its fallback on the late step.
"""

from __future__ import annotations

import importlib
import time

import numpy as np


def _obs_spec_dict(space) -> dict:
    """The export's ``obs_spec`` form for a gymnasium observation space (same rules as robot_rl.spaces)."""
    from gymnasium import spaces

    def is_image(sub):
        return isinstance(sub, spaces.Box) and sub.dtype == np.uint8 and len(sub.shape) == 3

    if isinstance(space, spaces.Dict):
        images = {k: list(s.shape) for k, s in space.spaces.items() if is_image(s)}
        state_keys = [k for k, s in space.spaces.items() if not is_image(s)]
        state_dim = sum(int(np.prod(space.spaces[k].shape)) for k in state_keys)
        return {"state_dim": state_dim, "image_shapes": images, "state_keys": state_keys}
    return {"state_dim": int(np.prod(space.shape)), "image_shapes": {}, "state_keys": []}


class GymDriver:
    def __init__(self, env_id: str, env_kwargs: dict | None = None, seed: int = 0):
        import gymnasium as gym

        importlib.import_module("sim2real")  # registers the robot_rl/* simulated robots
        self.env = gym.make(env_id, **(env_kwargs or {}))
        self.seed = seed
        self.obs_spec = _obs_spec_dict(self.env.observation_space)
        self._state_keys = self.obs_spec["state_keys"]
        self._image_keys = list(self.obs_spec["image_shapes"])
        self.episodes = 0
        self.safe_state_requests = 0
        self._obs, self._stamp_ns = None, 0

    def layout(self) -> dict:
        """What this robot provides, in the form ``layout_mismatches`` compares with an export's spec."""
        unwrapped = self.env.unwrapped
        space = self.env.action_space
        return {"obs_spec": self.obs_spec, "obs_layout": getattr(unwrapped, "obs_layout", None),
                "action_layout": getattr(unwrapped, "action_layout", None), "action_dim": int(space.shape[0]),
                "action_low": [float(x) for x in space.low], "action_high": [float(x) for x in space.high]}

    def connect(self) -> "GymDriver":
        self._store(self.env.reset(seed=self.seed)[0])
        return self

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> "GymDriver":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    def _store(self, raw) -> None:
        if isinstance(raw, dict):
            parts = [np.asarray(raw[k], np.float32).reshape(-1) for k in self._state_keys]
            obs = {"state": np.concatenate(parts) if parts else np.zeros(0, np.float32)}
            obs.update({k: raw[k] for k in self._image_keys})
        else:
            obs = {"state": np.asarray(raw, np.float32).reshape(-1)}
        self._obs, self._stamp_ns = obs, time.monotonic_ns()

    def read(self) -> tuple[dict[str, np.ndarray], int]:
        """The newest observation and its monotonic stamp (ns)."""
        return self._obs, self._stamp_ns

    def apply(self, action: np.ndarray) -> None:
        raw, _reward, terminated, truncated, _info = self.env.step(action)
        if terminated or truncated:
            self.episodes += 1
            raw, _ = self.env.reset()
        self._store(raw)

    def request_safe_state(self) -> None:
        self.safe_state_requests += 1


def make_driver(robot) -> GymDriver:
    if robot.driver == "gym":
        return GymDriver(robot.env, robot.env_kwargs, robot.seed)
    raise ValueError(f"driver {robot.driver!r} is not supported; use driver: gym")
