"""Building environments from a session config, and their scripted experts."""

from __future__ import annotations

import importlib
import os

import gymnasium as gym
import numpy as np

from robot_rl.config import ConfigError, SessionConfig
from sim2real import RC_CAR_CAMERA_ENV  # importing sim2real registers its gymnasium ids (strings: no simulator import)

# env class name -> "module:Class" of its scripted expert (constructed with the unwrapped env)
EXPERTS = {
    "PickCubeEnv": "sim2real.pick_cube.expert:PickCubeExpert",
    "RCCarRaceEnv": "sim2real.rc_car.expert:RCCarExpert",
}


def make_env(config: SessionConfig, **overrides) -> gym.Env:
    # headless rendering by default (read by MuJoCo when first imported, which happens below)
    os.environ.setdefault("MUJOCO_GL", "egl")
    importlib.import_module("sim2real")  # registers the robot_rl/* sim tasks
    importlib.import_module("robot_rl.hardware_envs")  # registers robot_rl/FrankySimReach-v0, robot_rl/FrankyReach-v0
    kwargs = {**config.env_kwargs, **overrides}
    try:
        env = gym.make(config.env, **kwargs)
    except gym.error.Error as err:
        raise ConfigError(f"env '{config.env}' cannot be made: {err}") from None
    except TypeError as err:
        raise ConfigError(f"env_kwargs {sorted(kwargs)} do not fit '{config.env}': {err}") from None
    if config.reward is not None and config.reward.source == "classifier":
        from robot_rl.reward.session import wrap_env  # reward and termination from the image classifier

        env = wrap_env(env, config.reward)
    if config.residual is not None:
        from policies.residual import wrap_residual  # the base policy's action joins the observation

        env = wrap_residual(env, config.residual)
    return env


def action_bounds(env: gym.Env) -> tuple[np.ndarray, np.ndarray]:
    space = env.action_space
    if not isinstance(space, gym.spaces.Box) or not np.all(np.isfinite(space.low)) or not np.all(np.isfinite(space.high)):
        raise ConfigError(f"{env.spec.id if env.spec else env}: the learner needs a bounded Box action space, got {space}")
    return space.low.astype(np.float32).reshape(-1), space.high.astype(np.float32).reshape(-1)


def normalize_action(action, low, high) -> np.ndarray:
    return np.clip((np.asarray(action, np.float32) - (high + low) / 2) / ((high - low) / 2), -1.0, 1.0)


def denormalize_action(action, low, high) -> np.ndarray:
    return np.asarray(action, np.float32) * (high - low) / 2 + (high + low) / 2


def control_hz(env: gym.Env, config: SessionConfig) -> float:
    if config.control_hz:
        return float(config.control_hz)
    unwrapped = env.unwrapped
    for attr in ("control_hz",):
        if hasattr(unwrapped, attr):
            return float(getattr(unwrapped, attr))
    fps = env.metadata.get("render_fps")
    return float(fps) if fps else 0.0


def make_expert(env: gym.Env):
    name = type(env.unwrapped).__name__
    if name not in EXPERTS:
        raise ConfigError(f"'{env.spec.id if env.spec else name}' has no scripted expert; set demos.source: none")
    module, cls = EXPERTS[name].split(":")
    return getattr(importlib.import_module(module), cls)(env.unwrapped)


def is_success(info: dict) -> bool | None:
    value = info.get("is_success", info.get("success"))
    return None if value is None else bool(value)
