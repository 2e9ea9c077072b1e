"""The in-process training loop: N quadrotor envs stepped as one batch, TD3 updates in between.

No processes, no sockets: on a 2-core machine the L2F budget (~30k TD3 updates, 300k+ env steps)
only fits in minutes when acting, storing and updating are batched tensor operations in one thread.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from policies.symmetric import GroupAveragedPolicy
from robot_rl.vectorized.config import VectorSessionConfig
from robot_rl.vectorized.eval_worker import EvalWorker
from robot_rl.vectorized.replay import VectorReplay
from robot_rl.vectorized.td3 import TD3Agent, TD3Config
from sim2real.quadrotor import observation as ob
from sim2real.quadrotor.env import VecQuadrotorHover, _task_with_overrides
from sim2real.quadrotor.evaluation import evaluate_hover
from sim2real.quadrotor.params import CRAZYFLIE, CrazyflieParams
from sim2real.quadrotor.reward import l2f_curriculum_step
from sim2real.quadrotor.symmetry import group_maps
from sim2real.quadrotor.task import HoverTaskConfig


def hover_task(config: VectorSessionConfig, training: bool = False) -> HoverTaskConfig:
    """The evaluated task (``env_kwargs``), or with ``training`` the one the training envs run (plus ``train_env_kwargs``)."""
    try:
        task = _task_with_overrides(None, dict(config.env_kwargs))
    except (TypeError, ValueError) as error:
        raise ValueError(f"env_kwargs: {error}") from None
    if not training:
        return task
    try:
        return _task_with_overrides(task, dict(config.train_env_kwargs))
    except (TypeError, ValueError) as error:
        raise ValueError(f"train_env_kwargs: {error}") from None


def critic_columns(config: VectorSessionConfig) -> np.ndarray | None:
    """The critic's inputs: by default the noise-free Markov state (state, rotor speeds, disturbance).

    Given the actual rotor speeds the action history adds nothing to the state, and dropping its
    128 columns cuts the critic's first layer from 160 to 32 inputs (critics are most of an update).
    """
    if config.td3.critic_sees_action_history:
        return None
    return np.r_[ob.STATE_COLUMNS.start:ob.STATE_COLUMNS.stop, ob.ACTOR_OBS_DIM:ob.CRITIC_OBS_DIM]


def make_agent(config: VectorSessionConfig, vehicle: CrazyflieParams = CRAZYFLIE) -> TD3Agent:
    """The TD3 agent; with ``td3.start_at_hover`` its actor starts at ``vehicle``'s hover command."""
    td3 = config.td3
    settings = TD3Config(hidden_dims=tuple(td3.hidden_dims), discount=td3.discount, tau=td3.tau, actor_lr=td3.actor_lr,
                         critic_lr=td3.critic_lr, policy_delay=td3.policy_delay, target_noise_std=td3.target_noise_std,
                         target_noise_clip=td3.target_noise_clip, activation=td3.activation,
                         critic_layer_norm=td3.critic_layer_norm,
                         initial_action=vehicle.hover_action() if td3.start_at_hover else 0.0)
    columns = critic_columns(config)
    critic_dim = ob.CRITIC_OBS_DIM if columns is None else len(columns)
    agent = TD3Agent(ob.ACTOR_OBS_DIM, critic_dim, 4, settings, seed=config.seed)
    if td3.symmetrize_policy:
        agent.policy = GroupAveragedPolicy(agent.actor, *group_maps())
    return agent


def actor_policy(agent: TD3Agent):
    """numpy (N, 146) -> numpy (N, 4): the deployed policy (``agent.policy``), deterministic."""
    @torch.no_grad()
    def policy(obs: np.ndarray) -> np.ndarray:
        return agent.policy(torch.from_numpy(np.ascontiguousarray(obs, np.float32))).numpy()
    return policy


def hover_env(num_envs: int, task: HoverTaskConfig, seed: int) -> VecQuadrotorHover:
    """The default training env: the nominal Crazyflie."""
    return VecQuadrotorHover(num_envs, task, seed=seed)


class _Evaluations:
    """Periodic evaluations of actor snapshots, in this process or on the evaluation worker (second core).

    A snapshot that reaches ``stop_at_success_rate`` stops training and becomes the final actor;
    with ``keep_best_policy`` the best evaluated snapshot replaces a worse final actor. Evaluations
    fly the nominal task with seeds of their own (never the final evaluation's).
    """

    def __init__(self, config: VectorSessionConfig, log, start: float, evaluate=None):
        self.config, self.train, self.log, self.start = config, config.train, log, start
        self.task = hover_task(config)
        self.evaluate = evaluate or (lambda policy, seed: evaluate_hover(policy, self.task, self.train.eval_episodes, seed))
        in_subprocess = self.train.eval_every_env_steps and self.train.eval_in_subprocess and evaluate is None
        self.worker = EvalWorker(config) if in_subprocess else None
        self.evals: list[dict] = []
        self.requested = 0
        self.eval_s = self.waited_s = 0.0  # evaluation time, and training time lost waiting for the worker
        self.pending: dict | None = None
        self.best: tuple[float, dict] | None = None  # (success rate, snapshot)
        self.stop_snapshot: dict | None = None

    @property
    def worker_cpu_s(self) -> float | None:
        return None if self.worker is None else round(self.worker.cpu_s, 2)

    def request(self, agent: TD3Agent, env_steps: int, metrics: dict) -> None:
        """Evaluates the current actor now, or hands it to the worker.

        A worker still busy with the previous snapshot is waited for: every snapshot gets evaluated, so
        which actor is kept or stops training does not depend on how loaded the machine is.
        """
        if self.worker is not None and self.pending is not None:
            t0 = time.perf_counter()
            self._collect(self.worker.wait())
            self.waited_s += time.perf_counter() - t0
        snapshot = {"weights": copy.deepcopy(agent.actor.state_dict()), "env_steps": env_steps, "updates": agent.updates,
                    "q_mean": float(metrics.get("q_mean", float("nan"))), "seed": self.config.seed + 1000 + self.requested}
        self.requested += 1
        if self.worker is None:
            t0 = time.perf_counter()
            result = self.evaluate(actor_policy(agent), snapshot["seed"])
            self.eval_s += time.perf_counter() - t0
            self._record(result, snapshot)
        else:
            self.worker.submit(self.requested - 1, agent.actor, snapshot["seed"], self.train.eval_episodes)
            self.pending = snapshot

    def poll(self) -> bool:
        """Collects a finished worker evaluation; True once a snapshot has reached the stop rate."""
        if self.worker is not None and self.pending is not None:
            result = self.worker.poll()
            if result is not None:
                self._collect(result)
        return self.stop_snapshot is not None

    def _record(self, result: dict, snapshot: dict) -> None:
        self.evals.append({"env_steps": snapshot["env_steps"], "updates": snapshot["updates"],
                           "wall_s": time.perf_counter() - self.start, "success_rate": result["success_rate"],
                           "mean_return": result["mean_return"]})
        self.log(f"[quadrotor] {snapshot['env_steps']} env steps, {snapshot['updates']} updates, "
                 f"{self.evals[-1]['wall_s']:.1f} s: success {result['success_rate']:.2f}, "
                 f"return {result['mean_return']:.0f}, q {snapshot['q_mean']:.1f}")
        snapshot["eval"] = self.evals[-1]
        if self.train.keep_best_policy and (self.best is None or result["success_rate"] > self.best[0]):
            self.best = (result["success_rate"], snapshot)
        stop = self.train.stop_at_success_rate
        if stop is not None and result["success_rate"] >= stop and self.stop_snapshot is None:
            self.stop_snapshot = snapshot

    def _collect(self, result: dict) -> None:
        self.eval_s += result["eval_s"]
        snapshot, self.pending = self.pending, None
        self._record(result, snapshot)

    def finish(self, agent: TD3Agent, env_steps: int, metrics: dict) -> dict | None:
        """Settles the final actor; returns the evaluation whose snapshot replaced the current actor, if one did."""
        if self.worker is not None and self.pending is not None:
            self._collect(self.worker.wait())
        chosen = self.stop_snapshot
        if chosen is None and self.train.keep_best_policy and self.best is not None:
            if self.evals[-1]["updates"] != agent.updates:  # the actor trained on after its last evaluation
                self.request(agent, env_steps, metrics)
                if self.pending is not None:
                    self._collect(self.worker.wait())
            chosen = self.best[1] if self.best[0] > self.evals[-1]["success_rate"] else None
        if chosen is None or chosen["updates"] == agent.updates:
            return None
        agent.actor.load_state_dict(chosen["weights"])
        return chosen["eval"]

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


def run_training(config: VectorSessionConfig, log=print, progress=None, env_factory=None,
                 evaluate=None, vehicle: CrazyflieParams = CRAZYFLIE) -> tuple[TD3Agent, dict]:
    """Trains until ``max_env_steps``, ``max_seconds`` or the early-stop success rate; returns (agent, stats).

    ``env_factory(num_envs, task, seed)`` builds the training env (default ``hover_env``), e.g. with
    randomized dynamics or an action delay; it must keep ``VecQuadrotorHover``'s vector API
    (``info["critic_obs"]``, ``info["final_obs"]``, ``set_reward_weights``). Periodic evaluations
    fly the task on the nominal simulator, or call ``evaluate(policy, seed) -> {"success_rate", "mean_return"}``
    (in this process), e.g. to pick a randomized policy by how it flies its own randomized training distribution.
    ``vehicle``: the parameters the factory's env flies (or is randomized around); the actor starts at its hover command.
    """
    cfg = config.train
    task = hover_task(config, training=True)
    agent = make_agent(config, vehicle)
    env = (env_factory or hover_env)(cfg.num_envs, task, config.seed)
    replay = VectorReplay(cfg.replay_capacity, ob.CRITIC_OBS_DIM, ob.ACTOR_OBS_DIM, ob.STATE_COLUMNS.stop, 4,
                          critic_columns(config), config.seed)
    rng = torch.Generator().manual_seed(config.seed + 7)

    obs, info = env.reset(seed=config.seed)
    critic_obs = info["critic_obs"]
    weights = task.reward
    env_steps, next_curriculum, next_eval = 0, cfg.curriculum_every_env_steps, cfg.eval_every_env_steps
    metrics, stopped_by = {}, "max_env_steps"
    evaluations = _Evaluations(config, log, time.perf_counter(), evaluate)
    update_s = env_s = 0.0
    start, start_cpu = evaluations.start, time.process_time()
    try:
        while env_steps < cfg.max_env_steps:
            t0 = time.perf_counter()
            if env_steps < cfg.warmup_env_steps:
                action = torch.rand(cfg.num_envs, 4, generator=rng) * 2.0 - 1.0
            else:
                action = agent.act(torch.from_numpy(obs))
                action = (action + cfg.exploration_noise_std * torch.randn(action.shape, generator=rng)).clamp(-1.0, 1.0)
            action = action.numpy()
            next_obs, reward, terminated, _, info = env.step(action)
            replay.add(obs, critic_obs, action, reward, terminated, info["final_obs"], info["final_critic_obs"])
            obs, critic_obs = next_obs, info["critic_obs"]
            env_steps += cfg.num_envs
            t1 = time.perf_counter()
            env_s += t1 - t0

            if env_steps >= cfg.warmup_env_steps and replay.size >= cfg.batch_size:
                for _ in range(cfg.updates_per_iteration):
                    metrics = agent.update(replay.sample(cfg.batch_size))
            update_s += time.perf_counter() - t1

            if env_steps >= next_curriculum:  # L2F: grow position/velocity/action weights every 100k steps
                next_curriculum += cfg.curriculum_every_env_steps
                weights = l2f_curriculum_step(weights)
                env.set_reward_weights(weights)
                if cfg.recompute_rewards:
                    replay.recompute_rewards(weights)
            if progress is not None:
                progress(env_steps, agent.updates, time.perf_counter() - start)
            if cfg.eval_every_env_steps and env_steps >= next_eval:
                next_eval += cfg.eval_every_env_steps
                if agent.updates:  # until the first update the actor is its initialisation: nothing new to evaluate
                    evaluations.request(agent, env_steps, metrics)
            if evaluations.poll():
                stopped_by = "success_rate"
                break
            if cfg.max_updates is not None and agent.updates >= cfg.max_updates:
                stopped_by = "max_updates"
                break
            if time.perf_counter() - start >= cfg.max_seconds:
                stopped_by = "max_seconds"
                break
        restored = evaluations.finish(agent, env_steps, metrics)
        if evaluations.stop_snapshot is not None:  # also when the last worker result arrived after the loop
            stopped_by = "success_rate"
    finally:
        evaluations.close()
    wall_s = time.perf_counter() - start
    cpu_s = time.process_time() - start_cpu  # what the run costs on an idle core, whatever else shares the machine
    stats = {
        "env_steps": env_steps, "learner_updates": agent.updates, "wall_s": wall_s, "cpu_s": cpu_s, "stopped_by": stopped_by,
        "env_s": env_s, "update_s": update_s, "env_steps_per_s": env_steps / max(env_s, 1e-9),
        "updates_per_s": agent.updates / max(update_s, 1e-9), "periodic_evals": evaluations.evals, "restored_best_eval": restored,
        "eval_s": evaluations.eval_s, "eval_wait_s": round(evaluations.waited_s, 2),
        "eval_worker_cpu_s": evaluations.worker_cpu_s,
        "final_reward_weights": {k: getattr(weights, k) for k in ("position", "linear_velocity", "action")},
        "last_metrics": {k: float(v) for k, v in metrics.items()},
    }
    return agent, stats
