"""The actor node's ZeroMQ link to a running learner (`robot_rl.transport.link.ActorLink`), without ROS.

It acts with the newest weights the learner sent (random actions during warm-up, as `robot_rl.actor`
does), and turns consecutive control ticks into transitions: (obs, executed action normalized to
[-1, 1], reward, terminated, truncated, next obs). A tick without an observation (a silent topic)
ends the chain: the next observation starts a new episode, so nothing links across a hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from robot_rl.acting import ActingPolicy, weights_from_bytes
from robot_rl.config import load_session
from robot_rl.envs import denormalize_action, normalize_action
from robot_rl.rundir import RunDir
from robot_rl.spaces import ObsSpec
from robot_rl.transport.link import ActorLink


class LearnerBridge:
    def __init__(self, run_dir: str | Path, actor_id: str = "ros_actor", episode_steps: int = 200, connect_timeout_s: float = 60.0):
        import torch
        import zmq

        torch.set_num_threads(1)
        run = RunDir(Path(run_dir))
        if not run.spec.exists():
            raise FileNotFoundError(f"{run.spec} is missing; start the learner for this run first (it writes the spec), or fix run_dir.")
        spec = json.loads(run.spec.read_text())
        config = load_session(run.config)
        self.obs_spec = ObsSpec.from_dict(spec["obs_spec"])
        self.low, self.high = np.asarray(spec["action_low"], np.float32), np.asarray(spec["action_high"], np.float32)
        self.policy = ActingPolicy(self.obs_spec, len(self.low), config.learner, self.low, self.high)
        self.warmup_steps = config.learner.warmup_steps
        self.episode_steps = episode_steps
        self.rng = np.random.default_rng(config.seed + 2000)
        self.context = zmq.Context()
        self.link = ActorLink(run.root, actor_id, self.context)
        self.link.connect(connect_timeout_s)
        self.env_steps = 0
        self._pending: tuple[dict, np.ndarray] | None = None  # (obs, normalized action) awaiting its next obs
        self._episode_step = 0
        self._episode_start = True
        self._return = 0.0

    @property
    def policy_version(self) -> int:
        return self.policy.version

    def poll(self) -> None:
        """Talk to the learner and swap in new weights; call between control ticks only."""
        self.link.pump(0)
        if self.link.weights is not None:
            version, blob, _ = self.link.weights
            self.policy.load(weights_from_bytes(blob), version)
            self.link.policy_version = version
            self.link.weights = None

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """The policy's action in env units (stochastic: this actor explores)."""
        if self.env_steps < self.warmup_steps or self.policy.version < 0:
            normalized = self.rng.uniform(-1.0, 1.0, size=len(self.low)).astype(np.float32)
        else:
            normalized = self.policy.act(obs, deterministic=False)
        return denormalize_action(normalized, self.low, self.high)

    def record(self, obs: dict[str, np.ndarray] | None, executed_action: np.ndarray | None, reward: float, success: bool) -> None:
        """One control tick: close the previous tick's transition with this observation, then open the next one.

        `reward`/`success` are what followed the previous tick's action. `obs` None: the chain breaks here.
        """
        if self._pending is not None and obs is not None:
            prev_obs, prev_action = self._pending
            self._episode_step += 1
            truncated = self._episode_step >= self.episode_steps and not success
            self.link.submit({"policy_version": self.policy.version, "reward": float(reward), "terminated": bool(success),
                              "truncated": bool(truncated), "episode_start": self._episode_start},
                             {"action": prev_action, **{f"obs/{k}": v for k, v in prev_obs.items()}, **{f"next_obs/{k}": v for k, v in obs.items()}})
            self.env_steps += 1
            self._episode_start = False
            self._return += float(reward)
            if success or truncated:
                self.link.control("episode", {"return": self._return, "success": bool(success), "env_steps": self.env_steps})
                obs = None  # the next tick starts a new episode
        if obs is None or executed_action is None:
            self._pending, self._episode_step, self._episode_start, self._return = None, 0, True, 0.0
            return
        self._pending = (obs, normalize_action(executed_action, self.low, self.high))

    def close(self) -> None:
        self.link.close()
        self.context.term()
