"""The actor process: steps the environment with the newest policy and streams transitions.

Run as ``python -m robot_rl.actor RUN_DIR``. Weights arrive from the learner at any time and are
swapped in between steps; every transition is stamped with the policy version that produced it.
In simulation the actor paces itself to the learner's update-to-data ratio.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import torch
import zmq

from robot_rl.acting import ActingPolicy, weights_from_bytes
from robot_rl.config import SessionConfig, load_session
from robot_rl.envs import action_bounds, denormalize_action, is_success, make_env
from robot_rl.rundir import RunDir
from robot_rl.spaces import flatten_obs, obs_spec_from_space
from robot_rl.transport.wire import WireError, decode, encode


def wait_for_endpoints(run: RunDir, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if run.endpoints.exists():
            return json.loads(run.endpoints.read_text())
        time.sleep(0.05)
    raise TimeoutError(f"no learner endpoints appeared in {run.endpoints} within {timeout_s:.0f} s; is the learner running?")


def evaluate_policy(env, policy_fn, episodes: int, seed: int) -> dict:
    """Deterministic evaluation: ``policy_fn(obs_dict) -> env action``."""
    spec = obs_spec_from_space(env.observation_space)
    returns, successes, lengths = [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, length, success = 0.0, 0, None
        while True:
            obs, reward, terminated, truncated, info = env.step(policy_fn(flatten_obs(spec, obs)))
            total += float(reward)
            length += 1
            success = is_success(info) if is_success(info) is not None else success
            if terminated or truncated:
                break
        returns.append(total)
        lengths.append(length)
        if success is not None:
            successes.append(float(success))
    return {
        "mean_return": float(np.mean(returns)),
        "success_rate": float(np.mean(successes)) if successes else None,
        "mean_length": float(np.mean(lengths)),
        "episodes": episodes,
    }


class Actor:
    def __init__(self, run: RunDir, config: SessionConfig, actor_id: str = "actor0", max_env_steps: int | None = None):
        self.run, self.config, self.actor_id = run, config, actor_id
        self.session_id = uuid.uuid4().hex[:12]
        torch.set_num_threads(config.train.actor_torch_threads)
        self.env = make_env(config)
        self.eval_env = make_env(config)
        self.spec = obs_spec_from_space(self.env.observation_space)
        self.low, self.high = action_bounds(self.env)
        self.policy = ActingPolicy(self.spec, len(self.low), config.learner, self.low, self.high)
        self.rng = np.random.default_rng(config.seed + 1000)
        self.max_env_steps = max_env_steps or config.train.max_env_steps
        self.env_steps = 0
        self.seq = 0
        self.learner_updates = 0
        self.stop = False
        self.step_times: list[float] = []

    def connect(self, context: zmq.Context) -> None:
        endpoints = wait_for_endpoints(self.run)
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.IDENTITY, f"{self.actor_id}:{self.session_id}".encode())
        self.socket.setsockopt(zmq.LINGER, 2000)
        self.socket.connect(endpoints["transitions"])
        self.socket.send_multipart(encode("hello", {"actor_id": self.actor_id, "actor_session": self.session_id}))

    def poll(self, timeout_ms: int = 0) -> None:
        """Apply whatever the learner sent: weights (swapped between steps), acks and progress."""
        while self.socket.poll(timeout_ms):
            timeout_ms = 0
            try:
                kind, header, _, blobs = decode(self.socket.recv_multipart())
            except WireError:
                continue
            if kind == "weights" and int(header["version"]) > self.policy.version:
                self.policy.load(weights_from_bytes(blobs["weights"]), int(header["version"]))
            if "learner_updates" in header:
                self.learner_updates = max(self.learner_updates, int(header["learner_updates"]))
            if header.get("stop"):
                self.stop = True

    def allowed_steps(self) -> float:
        cfg = self.config.learner
        return cfg.warmup_steps + self.learner_updates / cfg.utd + self.config.train.max_actor_lead_steps

    def choose_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.env_steps < self.config.learner.warmup_steps or self.policy.version < 0:
            return self.rng.uniform(-1.0, 1.0, size=len(self.low)).astype(np.float32)
        return self.policy.act(obs, deterministic=False)

    def send_transition(self, obs, action, reward, terminated, truncated, next_obs, episode_start) -> None:
        arrays = {"action": action}
        for key, value in obs.items():
            arrays[f"obs/{key}"] = value
            arrays[f"next_obs/{key}"] = next_obs[key]
        header = {
            "actor_id": self.actor_id, "actor_session": self.session_id, "seq": self.seq,
            "policy_version": self.policy.version, "reward": float(reward), "terminated": bool(terminated),
            "truncated": bool(truncated), "episode_start": bool(episode_start),
        }
        self.socket.send_multipart(encode("transition", header, arrays), copy=False)
        self.seq += 1

    def run_episodes(self) -> None:
        train = self.config.train
        next_eval = train.eval_every_env_steps
        episode = 0
        while not self.stop and self.env_steps < self.max_env_steps:
            raw, _ = self.env.reset(seed=self.config.seed + episode)
            obs = flatten_obs(self.spec, raw)
            total, start, success = 0.0, True, None
            while not self.stop and self.env_steps < self.max_env_steps:
                self.poll(0)
                while self.env_steps >= self.allowed_steps() and not self.stop:
                    self.poll(20)  # simulation pacing: wait for the learner's updates
                action = self.choose_action(obs)
                raw, reward, terminated, truncated, info = self.env.step(denormalize_action(action, self.low, self.high))
                next_obs = flatten_obs(self.spec, raw)
                self.send_transition(obs, action, reward, terminated, truncated, next_obs, start)
                self.env_steps += 1
                total += float(reward)
                start = False
                obs = next_obs
                success = is_success(info) if is_success(info) is not None else success
                if terminated or truncated:
                    break
            episode += 1
            self.socket.send_multipart(encode("episode", {"return": total, "success": success, "env_steps": self.env_steps}))
            if self.env_steps >= next_eval and self.policy.version >= 0:
                next_eval += train.eval_every_env_steps
                self.evaluate()
        if not self.stop:
            self.evaluate()
            self.socket.send_multipart(encode("done", {"env_steps": self.env_steps}))

    def evaluate(self) -> None:
        def policy_fn(obs):
            return denormalize_action(self.policy.act(obs, deterministic=True), self.low, self.high)

        result = evaluate_policy(self.eval_env, policy_fn, self.config.train.eval_episodes, seed=10_000_000 + self.env_steps)
        self.socket.send_multipart(encode("eval", {**result, "env_steps": self.env_steps, "policy_version": self.policy.version}))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="robot_rl actor process")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--actor-id", default="actor0")
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    actor = Actor(run, load_session(run.config), args.actor_id)

    def stop(signum, frame):
        actor.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    context = zmq.Context()
    actor.connect(context)
    # wait for the first weights so that even warm-up transitions carry a version
    deadline = time.monotonic() + 60
    while actor.policy.version < 0 and time.monotonic() < deadline:
        actor.poll(50)
    try:
        actor.run_episodes()
    finally:
        actor.socket.close()
        context.term()


if __name__ == "__main__":
    main()
