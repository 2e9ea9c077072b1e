"""The L2F Crazyflie hover task: ``VecQuadrotorHover`` (N envs, numpy) and ``QuadrotorHoverEnv``.

One step = one 10 ms RK4 step with the action (normalized rpm setpoints) held. The single
gymnasium env is the vectorized one with N=1 and no autoreset, so both run the same code.

Vector API (gymnasium ``VectorEnv``, same-step autoreset): ``step`` returns the actor
observation (N, 146); ``info["critic_obs"]`` (N, 156) is the critic's. When envs end, they are
reset in the same call, and ``info["final_obs"]`` / ``info["final_critic_obs"]`` hold every
env's next observation of the transition just taken: the terminal one where ``info["_final_obs"]``
is set, the same rows as ``obs`` / ``critic_obs`` elsewhere (the arrays may be shared when no env ended).
"""

from __future__ import annotations

from dataclasses import fields, replace

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from sim2real.quadrotor import observation as ob
from sim2real.quadrotor.dynamics import (
    ANGULAR_VELOCITY,
    LINEAR_VELOCITY,
    POSITION,
    QUATERNION,
    RPM,
    BatchDynamics,
    identity_state,
    rk4_step,
    rotation_matrices,
)
from sim2real.quadrotor.params import CRAZYFLIE, CrazyflieParams
from sim2real.quadrotor.reward import RewardWeights, hover_cost, hover_reward
from sim2real.quadrotor.task import HoverTaskConfig
from sim2real.quadrotor.trajectory import figure_eight

_STATE_PARTS = {
    "position_m": POSITION,
    "quaternion_wxyz": QUATERNION,
    "linear_velocity_m_s": LINEAR_VELOCITY,
    "angular_velocity_rad_s": ANGULAR_VELOCITY,
    "rpm": RPM,
}


def _task_with_overrides(task: HoverTaskConfig | None, overrides: dict) -> HoverTaskConfig:
    task = task or HoverTaskConfig()
    if not overrides:
        return task
    valid = {f.name for f in fields(HoverTaskConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown quadrotor task setting(s) {unknown}; use fields of HoverTaskConfig: {sorted(valid)}.")
    overrides = dict(overrides)
    # a session file gives the nested settings as mappings: they override the task's own, field by field
    for name in ("reward", "domain_randomization"):
        if isinstance(overrides.get(name), dict):
            overrides[name] = replace(getattr(task, name), **overrides[name])
    if isinstance(overrides.get("init_rpm_action"), list):
        overrides["init_rpm_action"] = tuple(overrides["init_rpm_action"])
    return replace(task, **overrides)


def sample_attitudes(rng: np.random.Generator, n: int, max_angle_rad: float) -> np.ndarray:
    """(4, n) quaternions, uniform over rotations whose angle is <= max_angle_rad (w >= 0).

    Same distribution as L2F's rejection of uniform quaternions, but rejects on the angle
    alone (its density is proportional to 1 - cos(angle)), so small limits stay cheap.
    """
    angles = np.empty(0)
    while angles.size < n:
        candidate = rng.uniform(0.0, max_angle_rad, 3 * n + 8)
        accept = rng.random(candidate.size) * (1.0 - np.cos(max_angle_rad)) <= 1.0 - np.cos(candidate)
        angles = np.concatenate([angles, candidate[accept]])
    angles = angles[:n]
    axes = rng.standard_normal((3, n))
    axes /= np.linalg.norm(axes, axis=0)
    return np.concatenate([np.cos(0.5 * angles)[None], np.sin(0.5 * angles) * axes])


class VecQuadrotorHover(VectorEnv):
    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        task: HoverTaskConfig | None = None,
        params: CrazyflieParams = CRAZYFLIE,
        seed: int | None = None,
        autoreset: bool = True,
        **task_overrides,
    ):
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}.")
        self.num_envs = int(num_envs)
        self.task = _task_with_overrides(task, task_overrides)
        self.params = params
        self.autoreset = autoreset
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (ob.ACTOR_OBS_DIM,), np.float32)
        self.single_critic_observation_space = gym.spaces.Box(-np.inf, np.inf, (ob.CRITIC_OBS_DIM,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.render_mode = None
        self._rng = np.random.default_rng(seed)

        n = self.num_envs
        self._nominal = BatchDynamics.nominal(params, n)
        self.dynamics = BatchDynamics.nominal(params, n)  # per-env, redrawn at reset
        self._x = identity_state(n)
        self._disturbance_force_n = np.zeros((3, n))
        self._disturbance_accel = np.zeros((3, n))
        self._disturbance_torque_nm = np.zeros((3, n))
        self._steps = np.zeros(n, np.int64)
        self._target_position_m = np.zeros((3, n))
        self._target_velocity_m_s = np.zeros((3, n))
        self._critic = np.zeros((n, ob.CRITIC_OBS_DIM), np.float32)
        self._actor = np.zeros((n, ob.ACTOR_OBS_DIM), np.float32)
        self._noise_std = ob.actor_noise_std(self.task)
        self._half_rpm_range = 0.5 * (params.rpm_max - params.rpm_min)
        self._needs_reset = True

    # ---- gymnasium API ------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._reset_envs(np.arange(self.num_envs))
        self._needs_reset = False
        self._actor = self._noisy_actor_obs()
        return self._actor, {"critic_obs": self._critic.copy()}

    def step(self, actions):
        if self._needs_reset:
            raise RuntimeError("call reset() before step() on the quadrotor env.")
        action = np.asarray(actions, np.float64)
        if action.shape != (self.num_envs, 4):
            raise ValueError(f"actions must have shape ({self.num_envs}, 4), got {action.shape}.")
        if not np.isfinite(action).all():
            raise ValueError("actions contain NaN or inf; check the policy output before stepping the quadrotor env.")
        action = np.clip(action, -1.0, 1.0)
        action_t = np.ascontiguousarray(action.T)
        applied_t = action_t
        if self.task.action_noise_std > 0:
            noise = self._rng.normal(0.0, self.task.action_noise_std, action_t.shape)
            applied_t = np.clip(action_t + noise, -1.0, 1.0)
        setpoint_rpm = self.params.rpm_min + (applied_t + 1.0) * self._half_rpm_range

        # L2F scores the state the action was taken in
        x = self._x
        cost = hover_cost(
            self.task.reward,
            x[POSITION] - self._target_position_m,
            x[3],
            x[LINEAR_VELOCITY] - self._target_velocity_m_s,
            x[ANGULAR_VELOCITY],
            action_t,
        )
        self._x = rk4_step(
            x, setpoint_rpm, self.dynamics, self.task.dt_s, self._disturbance_accel, self._disturbance_torque_nm
        )
        self._steps += 1
        self._update_target()
        terminated = self._terminated()
        truncated = (self._steps >= self.task.episode_steps) & ~terminated
        reward = hover_reward(self.task.reward, cost, terminated)

        history = self._critic[:, ob.HISTORY]
        history[:, :-4] = history[:, 4:]
        history[:, -4:] = action
        self._write_state_columns()
        obs = self._noisy_actor_obs()
        critic = self._critic.copy()
        info = {"critic_obs": critic}
        if self.autoreset:
            done = terminated | truncated
            info["_final_obs"] = done
            info["final_obs"], info["final_critic_obs"] = obs, critic
            if done.any():
                info["final_obs"], info["final_critic_obs"] = obs.copy(), critic.copy()
                ids = np.flatnonzero(done)
                self._reset_envs(ids)
                obs[ids] = self._noisy_actor_obs(ids)
                critic[ids] = self._critic[ids]
        self._actor = obs
        return obs, reward.astype(np.float32), terminated, truncated, info

    # ---- inspection and control (tests, system identification, curricula) -----------------

    @property
    def actor_obs(self) -> np.ndarray:
        """(N, 146) the last actor observation returned."""
        return self._actor

    @property
    def critic_obs(self) -> np.ndarray:
        """(N, 156) the critic observation of the current state."""
        return self._critic.copy()

    @property
    def state(self) -> dict[str, np.ndarray]:
        """Copies of the current state, (N, k) per part."""
        parts = {name: self._x[rows].T.copy() for name, rows in _STATE_PARTS.items()}
        parts["disturbance_force_n"] = self._disturbance_force_n.T.copy()
        parts["disturbance_torque_nm"] = self._disturbance_torque_nm.T.copy()
        parts["target_position_m"] = self._target_position_m.T.copy()
        return parts

    @property
    def episode_steps(self) -> np.ndarray:
        return self._steps.copy()

    def set_state(self, env_ids=None, **parts):
        """Overwrite parts of the state, e.g. ``set_state(position_m=..., rpm=...)``; values broadcast to (n, k)."""
        ids = np.arange(self.num_envs) if env_ids is None else np.atleast_1d(env_ids)
        disturbance = {"disturbance_force_n", "disturbance_torque_nm"}
        unknown = sorted(set(parts) - set(_STATE_PARTS) - disturbance)
        if unknown:
            raise ValueError(f"unknown state part(s) {unknown}; use {sorted(_STATE_PARTS) + sorted(disturbance)}.")
        for name, rows in _STATE_PARTS.items():
            if name in parts:
                size = rows.stop - rows.start
                self._x[rows, ids] = np.broadcast_to(np.asarray(parts[name], np.float64), (len(ids), size)).T
        if "quaternion_wxyz" in parts:
            self._x[QUATERNION] /= np.linalg.norm(self._x[QUATERNION], axis=0)
        if "disturbance_force_n" in parts:
            self._disturbance_force_n[:, ids] = np.broadcast_to(parts["disturbance_force_n"], (len(ids), 3)).T
        if "disturbance_torque_nm" in parts:
            self._disturbance_torque_nm[:, ids] = np.broadcast_to(parts["disturbance_torque_nm"], (len(ids), 3)).T
        self._disturbance_accel = self._disturbance_force_n / self.dynamics.mass_kg
        self._write_state_columns()
        self._write_disturbance_columns()
        self._actor = self._actor.copy()  # arrays already handed out stay as they were
        self._actor[ids] = self._noisy_actor_obs(ids)

    def set_reward_weights(self, weights: RewardWeights):
        """Swap the reward weights (curriculum); takes effect on the next step."""
        self.task = replace(self.task, reward=weights)

    # ---- internals -------------------------------------------------------------------------

    def _reset_envs(self, ids: np.ndarray):
        n, task, rng, p = len(ids), self.task, self._rng, self.params
        guided = rng.random(n) < task.init_guidance
        position = rng.uniform(-task.init_position_m, task.init_position_m, (3, n))
        position[:, guided] = 0.0
        quaternion = sample_attitudes(rng, n, task.init_max_angle_rad)
        quaternion[:, guided] = np.array([[1.0], [0.0], [0.0], [0.0]])
        velocity = rng.uniform(-task.init_linear_velocity_m_s, task.init_linear_velocity_m_s, (3, n))
        rates = rng.uniform(-task.init_angular_velocity_rad_s, task.init_angular_velocity_rad_s, (3, n))
        rpm_action = rng.uniform(*task.init_rpm_action, (4, n))
        force = rng.normal(0.0, task.disturbance_force_std_n, (3, n))
        torque = rng.normal(0.0, task.disturbance_torque_std_nm, (3, n))
        self._randomize_dynamics(ids)

        self._steps[ids] = 0
        self._update_target(ids)
        self._x[POSITION, ids] = position + self._target_position_m[:, ids]
        self._x[QUATERNION, ids] = quaternion
        self._x[LINEAR_VELOCITY, ids] = velocity
        self._x[ANGULAR_VELOCITY, ids] = rates
        self._x[RPM, ids] = p.action_to_rpm(rpm_action)
        self._disturbance_force_n[:, ids] = force
        self._disturbance_torque_nm[:, ids] = torque
        self._disturbance_accel[:, ids] = force / self.dynamics.mass_kg[ids]
        # L2F starts the action history at the initial rotor speeds
        self._critic[ids, ob.HISTORY] = np.tile(rpm_action.T, ob.ACTION_HISTORY_LENGTH).astype(np.float32)
        self._write_state_columns(ids)
        self._write_disturbance_columns(ids)

    def _randomize_dynamics(self, ids: np.ndarray):
        dr, rng, n = self.task.domain_randomization, self._rng, len(ids)
        nominal, dyn = self._nominal, self.dynamics

        def factor(rel, shape=(n,)):
            return rng.uniform(1.0 - rel, 1.0 + rel, shape) if rel > 0 else 1.0

        dyn.mass_kg[ids] = nominal.mass_kg[ids] * factor(dr.mass_rel)
        dyn.thrust_coefficient[ids] = nominal.thrust_coefficient[ids] * factor(dr.thrust_coefficient_rel)
        dyn.motor_time_constant_s[ids] = nominal.motor_time_constant_s[ids] * factor(dr.motor_time_constant_rel)
        dyn.inertia_kg_m2[:, ids] = nominal.inertia_kg_m2[:, ids] * factor(dr.inertia_rel)

    def _update_target(self, ids=None):
        if self.task.target == "hover":
            return
        ids = slice(None) if ids is None else ids
        position, velocity = figure_eight(
            self._steps[ids] * self.task.dt_s,
            self.task.figure_eight_period_s,
            self.task.figure_eight_scale_m,
            self.task.figure_eight_warmup_s,
        )
        self._target_position_m[:, ids] = position.T
        self._target_velocity_m_s[:, ids] = velocity.T

    def _terminated(self) -> np.ndarray:
        task, x = self.task, self._x
        out = (np.abs(x[POSITION] - self._target_position_m) > task.termination_position_m).any(axis=0)
        out |= (np.abs(x[LINEAR_VELOCITY]) > task.termination_linear_velocity_m_s).any(axis=0)
        out |= (np.abs(x[ANGULAR_VELOCITY]) > task.termination_angular_velocity_rad_s).any(axis=0)
        out |= ~np.isfinite(x).all(axis=0)
        return out

    def _write_state_columns(self, ids=None):
        ids = slice(None) if ids is None else ids
        x = self._x[:, ids]
        state = np.concatenate([
            x[POSITION] - self._target_position_m[:, ids],
            rotation_matrices(x[QUATERNION]),
            x[LINEAR_VELOCITY] - self._target_velocity_m_s[:, ids],
            x[ANGULAR_VELOCITY],
        ])
        self._critic[ids, ob.STATE_COLUMNS] = state.T
        self._critic[ids, ob.CRITIC["rotor_speed_normalized"]] = self.params.rpm_to_action(x[RPM]).T

    def _write_disturbance_columns(self, ids=None):
        ids = slice(None) if ids is None else ids
        self._critic[ids, ob.CRITIC["disturbance_force_n"]] = self._disturbance_force_n[:, ids].T
        self._critic[ids, ob.CRITIC["disturbance_torque_nm"]] = self._disturbance_torque_nm[:, ids].T

    def _noisy_actor_obs(self, ids=None) -> np.ndarray:
        obs = self._critic[:, : ob.ACTOR_OBS_DIM] if ids is None else self._critic[ids, : ob.ACTOR_OBS_DIM]
        obs = obs.copy()
        if self._noise_std.any():
            obs[:, ob.STATE_COLUMNS] += self._rng.standard_normal((len(obs), 18), np.float32) * self._noise_std
        return obs


class QuadrotorHoverEnv(gym.Env):
    """Single-vehicle gymnasium view of ``VecQuadrotorHover`` (N=1, no autoreset)."""

    metadata = {"render_modes": []}

    def __init__(self, task: HoverTaskConfig | None = None, params: CrazyflieParams = CRAZYFLIE, **task_overrides):
        self.vec_env = VecQuadrotorHover(1, task, params, autoreset=False, **task_overrides)
        self.observation_space = self.vec_env.single_observation_space
        self.action_space = self.vec_env.single_action_space
        self.critic_observation_space = self.vec_env.single_critic_observation_space

    @property
    def task(self) -> HoverTaskConfig:
        return self.vec_env.task

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, info = self.vec_env.reset(seed=seed)
        return obs[0], {"critic_obs": info["critic_obs"][0]}

    def step(self, action):
        obs, reward, terminated, truncated, info = self.vec_env.step(np.asarray(action).reshape(1, 4))
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), {"critic_obs": info["critic_obs"][0]}

    def set_reward_weights(self, weights: RewardWeights):
        self.vec_env.set_reward_weights(weights)
