"""Residual RL on top of a frozen base policy (ResiP, Ankile et al. 2024; Policy Decorator, Yuan et al. 2024).

executed = clip(a_base + alpha_t * tanh(r(obs, a_base)), -1, 1), in normalized action units.

- `BaseActionObservation` (an env wrapper, applied by `make_env` when a session has `residual:`)
  appends the base's normalized action to the observation's state, so everything downstream
  (actor, learner, replay, demos, interventions) sees ``(obs, a_base)``. Actions pass through it
  unchanged: what reaches the env is what is stored.
- `ResidualActor` is the SAC actor: its tanh-Gaussian sample is the residual, composed with the
  base read from the state's tail, so the actor returns the *executed* action. The critic
  therefore scores the executed action, and demos and interventions (which store executed
  actions) need no conversion. Its mean output layer starts at zero.
- alpha_t grows linearly from 0 to alpha over ``ramp_steps`` env steps, counted as
  ``learner_updates / utd``: it lives in the actor's weights (buffer ``alpha_now``) and is set by
  the learner before each update, so it survives actor and learner restarts (checkpointed) and
  reaches actors with the published weights.
- Export: with an ONNX base, `compose_residual_onnx` joins base and residual into one graph that
  takes the plain observation; with a scripted base the export takes ``state = [obs, a_base]``
  and its spec says so (``residual.base_in_state``).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import gymnasium as gym
import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

from policies.export.onnx_export import (
    HASH_KEY,
    SPEC_KEY,
    ExportError,
    OnnxPolicy,
    content_hash,
    export_onnx,
    make_session,
    read_spec,
)
from policies.export.spec import layout_mismatches
from policies.networks import TanhGaussianActor
from robot_rl.config import ConfigError
from robot_rl.envs import action_bounds, make_expert, normalize_action
from robot_rl.residual import EXPERT_BASE, ResidualConfig
from robot_rl.spaces import flatten_obs, obs_spec_from_space

BASE_ACTION_KEY = "base_action"  # Dict observations get the base action under this key (last, so it ends "state")


# ----- base policies: raw env observation -> normalized action -----------------------------------
class ScriptedBase:
    """Any controller with ``act(obs) -> action in env units`` (a scripted expert, a hand-written robot controller)."""

    def __init__(self, controller, action_low, action_high):
        self.controller = controller
        self.low, self.high = np.asarray(action_low, np.float32), np.asarray(action_high, np.float32)

    def __call__(self, raw_obs) -> np.ndarray:
        return normalize_action(self.controller.act(raw_obs), self.low, self.high)


class OnnxBase:
    """An exported policy (SAC, BC, anything with the robot_rl spec) run with onnxruntime."""

    def __init__(self, path: str | Path, env):
        if not Path(path).is_file():
            raise ConfigError(f"residual base {path} does not exist: export a policy first (robot-rl train-bc RUN "
                                    f"or robot-rl export RUN) or set residual.base: expert.")
        self.policy = OnnxPolicy(path)
        self.spec = obs_spec_from_space(env.observation_space)
        self.low, self.high = action_bounds(env)
        unwrapped = env.unwrapped
        expected = {"obs_spec": self.spec.to_dict(), "obs_layout": getattr(unwrapped, "obs_layout", None),
                    "action_layout": getattr(unwrapped, "action_layout", None), "action_dim": len(self.low),
                    "action_low": self.low.tolist(), "action_high": self.high.tolist()}
        problems = layout_mismatches(self.policy.spec, expected)
        if problems:
            raise ConfigError(f"residual base {path} does not fit this env ({'; '.join(problems)}): "
                             f"export the base from a run on the same task.")

    def __call__(self, raw_obs) -> np.ndarray:
        return normalize_action(self.policy(flatten_obs(self.spec, raw_obs)), self.low, self.high)


def make_base(config: ResidualConfig, env) -> Callable:
    if config.base == EXPERT_BASE:
        return ScriptedBase(make_expert(env), *action_bounds(env))
    return OnnxBase(config.base, env)


# ----- the env wrapper --------------------------------------------------------------------------
class BaseActionObservation(gym.Wrapper):
    """Appends the base policy's normalized action to the observation's state; actions pass through unchanged."""

    def __init__(self, env, base: Callable):
        super().__init__(env)
        self.base = base
        space = env.observation_space
        action_dim = int(np.prod(env.action_space.shape))
        base_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        if isinstance(space, gym.spaces.Dict):
            self.observation_space = gym.spaces.Dict(OrderedDict([*space.spaces.items(), (BASE_ACTION_KEY, base_space)]))
        elif isinstance(space, gym.spaces.Box) and space.dtype != np.uint8:
            low = np.concatenate([space.low.reshape(-1), base_space.low]).astype(np.float32)
            high = np.concatenate([space.high.reshape(-1), base_space.high]).astype(np.float32)
            self.observation_space = gym.spaces.Box(low, high, dtype=np.float32)
        else:
            raise ValueError(f"residual RL needs a Box or Dict observation, got {space}")
        self.base_action = np.zeros(action_dim, np.float32)

    def _augment(self, obs):
        self.base_action = np.asarray(self.base(obs), np.float32).reshape(-1)
        if isinstance(obs, dict):
            return OrderedDict([*obs.items(), (BASE_ACTION_KEY, self.base_action)])
        return np.concatenate([np.asarray(obs, np.float32).reshape(-1), self.base_action])

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._augment(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._augment(obs), reward, terminated, truncated, info


def wrap_residual(env, config: ResidualConfig | None):
    return env if config is None else BaseActionObservation(env, make_base(config, env))


# ----- the actor (torch) ------------------------------------------------------------------------
def build_actor(feature_dim: int, action_dim: int, learner_config, state_dim: int):
    """The SAC actor a session's learner and actors hold: plain, or residual when the session has ``residual:``."""
    cfg = learner_config
    if not cfg.residual_alpha:
        return TanhGaussianActor(feature_dim, action_dim, cfg.hidden_dims, cfg.layer_norm, cfg.zero_init_actor_mean)
    return ResidualActor(feature_dim, action_dim, cfg.hidden_dims, cfg.layer_norm, base_start=state_dim - action_dim,
                         alpha=cfg.residual_alpha, ramp_updates=cfg.utd * cfg.residual_ramp_steps)


class ResidualActor(TanhGaussianActor):
    """A tanh-Gaussian residual r composed with the base at features[base_start:base_start+A]; returns executed actions."""

    def __init__(self, feature_dim: int, action_dim: int, hidden: list[int], layer_norm: bool, base_start: int,
                 alpha: float, ramp_updates: int):
        super().__init__(feature_dim, action_dim, hidden, layer_norm, zero_init_mean=True)
        if base_start < 0:
            raise ValueError("the observation state is shorter than the action: is the residual wrapper applied?")
        self.action_dim, self.base_start = action_dim, base_start
        self.alpha, self.ramp_updates = float(alpha), int(ramp_updates)
        self.register_buffer("alpha_now", torch.zeros(()))  # shipped with the weights: actors act with the learner's alpha_t
        self.set_updates(0)

    def set_updates(self, updates: int) -> None:
        fraction = 1.0 if self.ramp_updates <= 0 else min(1.0, updates / self.ramp_updates)
        self.alpha_now.fill_(self.alpha * fraction)

    def base_action(self, features):
        return features[..., self.base_start:self.base_start + self.action_dim]

    def compose(self, features, residual):
        return torch.clamp(self.base_action(features) + self.alpha_now * residual, -1.0, 1.0)

    def sample(self, features):
        residual, log_prob = super().sample(features)
        return self.compose(features, residual), log_prob  # entropy is the residual's

    def deterministic(self, features):
        return self.compose(features, super().deterministic(features))


# ----- export -----------------------------------------------------------------------------------
def compose_residual_onnx(base_path: str | Path, residual_path: str | Path, out_path: str | Path, spec: dict,
                          action_low, action_high) -> Path:
    """One ONNX graph: plain observation -> base (ONNX) -> normalize -> [state, a_base] -> residual -> action.

    ``residual_path`` takes ``state = [obs, a_base]`` (and the same cameras); ``spec`` (the plain
    observation's) is embedded in the result with its content hash.
    """
    base = onnx.load(str(base_path))
    residual = onnx.load(str(residual_path))
    for model in (base, residual):  # their own specs do not describe the composed graph
        del model.metadata_props[:]
    base = onnx.compose.add_prefix(base, "base/")
    residual = onnx.compose.add_prefix(residual, "residual/")
    low = np.asarray(action_low, np.float32)
    high = np.asarray(action_high, np.float32)

    inputs, nodes, initializers = [], [], []
    plain_inputs = {i.name[len("base/"):]: i for i in base.graph.input}
    for name, value in plain_inputs.items():
        value = onnx.ValueInfoProto.FromString(value.SerializeToString())
        value.name = name
        inputs.append(value)
        nodes.append(helper.make_node("Identity", [name], [f"base/{name}"]))
    for value in residual.graph.input:  # cameras the residual reads, if any, that the base does not
        name = value.name[len("residual/"):]
        if name != "state" and name not in plain_inputs:
            copy = onnx.ValueInfoProto.FromString(value.SerializeToString())
            copy.name = name
            inputs.append(copy)
    nodes += list(base.graph.node)
    initializers += list(base.graph.initializer)
    initializers += [
        helper.make_tensor("compose/bias", TensorProto.FLOAT, [len(low)], ((high + low) / 2).tolist()),
        helper.make_tensor("compose/scale", TensorProto.FLOAT, [len(low)], ((high - low) / 2).tolist()),
        helper.make_tensor("compose/minus_one", TensorProto.FLOAT, [], [-1.0]),
        helper.make_tensor("compose/one", TensorProto.FLOAT, [], [1.0]),
    ]
    nodes += [
        helper.make_node("Sub", ["base/action", "compose/bias"], ["compose/centered"]),
        helper.make_node("Div", ["compose/centered", "compose/scale"], ["compose/scaled"]),
        helper.make_node("Clip", ["compose/scaled", "compose/minus_one", "compose/one"], ["compose/base_action"]),
        helper.make_node("Concat", ["state", "compose/base_action"], ["residual/state"], axis=1),
    ]
    for value in residual.graph.input:
        name = value.name[len("residual/"):]
        if name != "state":
            nodes.append(helper.make_node("Identity", [name], [value.name]))
    nodes += list(residual.graph.node)
    initializers += list(residual.graph.initializer)
    nodes.append(helper.make_node("Identity", ["residual/action"], ["action"]))
    output = onnx.ValueInfoProto.FromString(residual.graph.output[0].SerializeToString())
    output.name = "action"
    graph = helper.make_graph(nodes, "residual_policy", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=list(residual.opset_import), producer_name="robot_rl")
    model.ir_version = residual.ir_version
    onnx.checker.check_model(model)
    for key, value in {SPEC_KEY: json.dumps(spec, sort_keys=True), HASH_KEY: content_hash(model)}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    onnx.save_model(model, str(tmp))
    tmp.replace(out_path)
    return out_path


def plain_obs_spec(obs_spec: dict, action_dim: int) -> dict:
    """The observation spec without the base action the residual wrapper appended."""
    keys = [k for k in obs_spec.get("state_keys", []) if k != BASE_ACTION_KEY]
    return {**obs_spec, "state_dim": int(obs_spec["state_dim"]) - action_dim, "state_keys": keys}


def export_residual_session(policy, config, export_spec: dict, path: str | Path, parity_obs: dict[str, np.ndarray],
                            env) -> tuple[dict, gym.Env]:
    """Export a residual session's deterministic policy; returns the export figures and the env to evaluate it in.

    ``policy`` takes ``state = [obs, a_base]``, ``export_spec`` describes that (built from the
    wrapped ``env``). With an ONNX base the result is one graph taking the plain observation
    (parity-checked end to end against onnxruntime base -> torch residual) and is evaluated in the
    plain env; with a scripted base it takes ``[obs, a_base]``, its spec says
    ``residual.base_in_state`` and lists the base action in ``obs_layout``.
    """
    residual_config = config.residual
    path = Path(path)
    low, high = action_bounds(env)
    action_dim = len(low)
    info = {"base": residual_config.base, "alpha": residual_config.alpha, "ramp_steps": residual_config.ramp_steps,
            "alpha_now": float(policy.actor.alpha_now)}
    in_state = {**export_spec, "residual": {**info, "base_in_state": True,
                                            "note": f"state ends with the base action normalized to [-1, 1] ({action_dim} values)"}}
    if in_state.get("obs_layout") is not None:
        in_state["obs_layout"] = [*in_state["obs_layout"], [BASE_ACTION_KEY, action_dim]]
    if residual_config.base == EXPERT_BASE:
        return export_onnx(policy, in_state, path, parity_obs), env

    residual_path = path.with_name(path.stem + "_residual_only.onnx")
    export_onnx(policy, in_state, residual_path, parity_obs)
    spec = {**export_spec, "obs_spec": plain_obs_spec(export_spec["obs_spec"], action_dim),
            "residual": {**info, "base_in_state": False, "composed_with_base": True}}
    compose_residual_onnx(residual_config.base, residual_path, path, {**spec, "opset": 17}, low, high)

    # parity: the composed graph against onnxruntime(base) -> torch(residual) on the same observations
    plain = dict(parity_obs)
    plain["state"] = np.ascontiguousarray(parity_obs["state"][:, :-action_dim])
    base_session = make_session(residual_config.base)
    base_norm = normalize_action(base_session.run(["action"], {i.name: plain[i.name] for i in base_session.get_inputs()})[0],
                                 low, high)
    with torch.no_grad():
        aug = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in plain.items()}
        aug["state"] = torch.from_numpy(np.concatenate([plain["state"], base_norm], axis=1).astype(np.float32))
        expected = policy(aug).numpy()
    session = make_session(path)
    got = session.run(["action"], {i.name: np.ascontiguousarray(plain[i.name]) for i in session.get_inputs()})[0]
    error = float(np.max(np.abs(got - expected)))
    if not error <= 1e-4:  # also catches NaN
        path.rename(path.with_name(path.name + ".failed"))
        raise ExportError(f"composed residual ONNX parity failed: max abs error {error:.3g}; export kept as *.failed")
    exported = {"path": str(path), "sha256": read_spec(path)["sha256"], "parity_max_abs_err": error,
                "parity_samples": int(len(plain["state"])), "residual_only_path": str(residual_path)}
    return exported, env.env  # the composed export computes the base itself: evaluated in the unwrapped env
