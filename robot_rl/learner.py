"""The learner process: receives transitions over ZeroMQ, trains SAC, publishes versioned weights.

Run as ``python -m robot_rl.learner RUN_DIR``. Sockets: a ROUTER that actors' DEALERs talk to
(transitions in; acks, progress and weights out) and a PUB that monitors read stats from.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from collections import defaultdict, deque
from pathlib import Path

import numpy as np
import torch
import zmq

from robot_rl.acting import weights_to_bytes
from robot_rl.config import SessionConfig, load_session
from robot_rl.envs import action_bounds, make_env
from robot_rl.episodes import load_episodes_into
from robot_rl.replay import ReplayBuffer, sample_mixed
from robot_rl.rundir import RunDir, append_jsonl, write_json_atomic
from robot_rl.sac import SACAgent, batch_to_torch
from robot_rl.spaces import obs_spec_from_space
from robot_rl.transport.wire import WireError, decode, encode

CHECKPOINT_KEEP = 3


def save_checkpoint(run: RunDir, agent: SACAgent, counters: dict) -> Path:
    """Atomic write (temp file + rename), keeping the newest ``CHECKPOINT_KEEP``."""
    path = run.checkpoints / f"ckpt_{agent.updates:09d}.pt"
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"agent": agent.state_dict(), "counters": counters, "torch_rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)
    for old in sorted(run.checkpoints.glob("ckpt_*.pt"))[:-CHECKPOINT_KEEP]:
        old.unlink()
    return path


def latest_checkpoint(run: RunDir) -> Path | None:
    found = sorted(run.checkpoints.glob("ckpt_*.pt"))
    return found[-1] if found else None


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


class Learner:
    def __init__(self, run: RunDir, config: SessionConfig):
        self.run, self.config, self.cfg = run, config, config.learner
        torch.set_num_threads(self.cfg.torch_threads)
        env = make_env(config)
        self.spec = obs_spec_from_space(env.observation_space)
        low, high = action_bounds(env)
        env.close()
        self.agent = SACAgent(self.spec, len(low), self.cfg, low, high, seed=config.seed)
        self.online = ReplayBuffer(self.spec, len(low), self.cfg.replay_capacity, seed=config.seed)
        self.demos = ReplayBuffer(self.spec, len(low), max(self.cfg.replay_capacity // 4, 1000), seed=config.seed + 7)
        self.demo_transitions = load_episodes_into(self.demos, run.demos, self.spec)

        self.env_steps = 0  # transitions received
        self.policy_version = 0
        self.actors: dict[bytes, dict] = {}
        self.rejected: dict[str, int] = defaultdict(int)
        self.episode_returns: deque = deque(maxlen=20)
        self.episode_successes: deque = deque(maxlen=20)
        self.episodes = 0
        self.last_eval: dict = {}
        self.stop_reason = ""
        self.metrics: dict[str, float] = {}
        self.update_times: deque = deque(maxlen=200)

        checkpoint = latest_checkpoint(run)
        if checkpoint is not None:  # restarting with the same run directory resumes it
            state = load_checkpoint(checkpoint)
            self.agent.load_state_dict(state["agent"])
            self.policy_version = int(state["counters"]["policy_version"])
            self.episodes = int(state["counters"]["episodes"])
            self.env_steps = int(state["counters"]["env_steps"])

        from torch.utils.tensorboard import SummaryWriter  # heavy import, only in the learner

        self.writer = SummaryWriter(str(run.logs))

    # ----- sockets --------------------------------------------------------------------------
    def bind(self, context: zmq.Context) -> None:
        self.router = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.router.setsockopt(zmq.LINGER, 0)
        port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.pub = context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        stats_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        write_json_atomic(self.run.endpoints, {
            "transitions": f"tcp://127.0.0.1:{port}", "stats": f"tcp://127.0.0.1:{stats_port}", "pid": os.getpid(),
        })

    def send(self, identity: bytes, frames: list[bytes]) -> None:
        self.router.send_multipart([identity, *frames], copy=False)

    def publish_weights(self, identities=None) -> None:
        blob = weights_to_bytes(self.agent.actor_state_dict())
        frames = encode("weights", {"version": self.policy_version, "learner_updates": self.agent.updates}, blobs={"weights": blob})
        for identity in identities if identities is not None else list(self.actors):
            self.send(identity, frames)

    def send_progress(self) -> None:
        frames = encode("progress", {"learner_updates": self.agent.updates, "policy_version": self.policy_version,
                                     "stop": bool(self.stop_reason)})
        for identity in self.actors:
            self.send(identity, frames)

    # ----- incoming -------------------------------------------------------------------------
    def handle(self, identity: bytes, frames: list[bytes]) -> None:
        try:
            kind, header, arrays, _ = decode(frames)
        except WireError as err:
            self.rejected[err.reason] += 1
            return
        actor = self.actors.setdefault(identity, {"received": 0, "policy_version": 0})
        if kind == "hello":
            self.publish_weights([identity])
        elif kind == "transition":
            self._add_transition(identity, actor, header, arrays)
        elif kind == "episode":
            self.episodes += 1
            self.episode_returns.append(float(header.get("return", 0.0)))
            if header.get("success") is not None:
                self.episode_successes.append(float(header["success"]))
        elif kind == "eval":
            self._record_eval(header)
        elif kind == "done":
            self.stop_reason = self.stop_reason or "max_env_steps"
        else:
            self.rejected["unknown_kind"] += 1

    def _add_transition(self, identity: bytes, actor: dict, header: dict, arrays: dict) -> None:
        try:
            obs = {"state": arrays["obs/state"]}
            next_obs = {"state": arrays["next_obs/state"]}
            for key in self.spec.image_keys:
                obs[key], next_obs[key] = arrays[f"obs/{key}"], arrays[f"next_obs/{key}"]
            action = arrays["action"]
            if obs["state"].shape != (self.spec.state_dim,) or action.shape != (self.agent.action_dim,):
                raise KeyError("shape")
            if not (np.all(np.isfinite(obs["state"])) and np.all(np.isfinite(action)) and np.isfinite(header["reward"])):
                self.rejected["non_finite"] += 1
                return
            self.online.add(obs, action, float(header["reward"]), bool(header["terminated"]), bool(header["truncated"]),
                            next_obs, episode_start=bool(header["episode_start"]), stream=str(identity))
        except (KeyError, TypeError, ValueError):
            self.rejected["bad_transition"] += 1
            return
        actor["received"] += 1
        actor["policy_version"] = int(header.get("policy_version", 0))
        self.env_steps += 1
        self.send(identity, encode("ack", {"seq": header.get("seq"), "learner_updates": self.agent.updates,
                                           "policy_version": self.policy_version, "stop": bool(self.stop_reason)}))

    def _record_eval(self, header: dict) -> None:
        record = {"env_steps": int(header["env_steps"]), "learner_updates": self.agent.updates,
                  "wall_s": time.monotonic() - self.start_time, "eval_return": float(header["mean_return"]),
                  "success_rate": header.get("success_rate"), "episodes": int(header["episodes"])}
        self.last_eval = record
        append_jsonl(self.run.eval_log, record)
        self.writer.add_scalar("eval/return", record["eval_return"], record["env_steps"])
        if record["success_rate"] is not None:
            self.writer.add_scalar("eval/success_rate", record["success_rate"], record["env_steps"])
        train = self.config.train
        if train.stop_at_success_rate is not None and (record["success_rate"] or 0.0) >= train.stop_at_success_rate:
            self.stop_reason = "success_rate_reached"
        if train.stop_at_eval_return is not None and record["eval_return"] >= train.stop_at_eval_return:
            self.stop_reason = "eval_return_reached"

    # ----- main loop ------------------------------------------------------------------------
    def can_update(self) -> bool:
        cfg = self.cfg
        if len(self.online) < max(cfg.batch_size, 1) or self.env_steps < cfg.warmup_steps:
            return False
        # never run ahead of the configured update-to-data ratio
        return self.agent.updates < cfg.utd * (self.env_steps - cfg.warmup_steps + 1)

    def train_step(self) -> None:
        cfg = self.cfg
        t0 = time.perf_counter()
        batch = batch_to_torch(sample_mixed(self.online, self.demos, cfg.batch_size, cfg.demo_ratio))
        actor_every = cfg.actor_update_every
        self.metrics = {**self.metrics, **self.agent.update(batch, update_actor=(self.agent.updates % actor_every == 0))}
        self.update_times.append(time.perf_counter() - t0)
        if self.agent.updates % cfg.weight_publish_every == 0:
            self.policy_version += 1
            self.publish_weights()
        if self.agent.updates % 8 == 0:
            self.send_progress()
        if self.agent.updates % 100 == 0:
            for key, value in self.metrics.items():
                self.writer.add_scalar(f"learner/{key}", value, self.agent.updates)
        if self.agent.updates % self.config.train.checkpoint_every_updates == 0:
            save_checkpoint(self.run, self.agent, self.counters())

    def counters(self) -> dict:
        return {"env_steps": self.env_steps, "policy_version": self.policy_version, "episodes": self.episodes}

    def stats(self) -> dict:
        elapsed = max(time.monotonic() - self.start_time, 1e-6)
        mean_update = float(np.mean(self.update_times)) if self.update_times else 0.0
        lag = [self.policy_version - a["policy_version"] for a in self.actors.values()]
        return {
            "env_steps": self.env_steps, "episodes": self.episodes, "learner_updates": self.agent.updates,
            "updates_per_s": 1.0 / mean_update if mean_update else 0.0,
            "utd": self.agent.updates / max(self.env_steps - self.cfg.warmup_steps, 1),
            "policy_version": self.policy_version, "policy_lag": max(lag) if lag else 0,
            "recent_return": float(np.mean(self.episode_returns)) if self.episode_returns else None,
            "recent_success": float(np.mean(self.episode_successes)) if self.episode_successes else None,
            "last_eval": self.last_eval, "wall_s": elapsed, "rejected": dict(self.rejected),
            "demo_transitions": self.demo_transitions, "stop_reason": self.stop_reason,
            "actors": {identity.hex(): a for identity, a in self.actors.items()},
            **{k: v for k, v in self.metrics.items()},
        }

    def run_forever(self) -> None:
        context = zmq.Context()
        self.bind(context)
        self.start_time = time.monotonic()
        deadline = self.start_time + 60.0 * self.config.train.max_minutes
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        last_stats = 0.0
        try:
            while True:
                busy = self.can_update() and not self.stop_reason
                for _ in range(64):  # drain what arrived, without starving the updates
                    if not poller.poll(0 if busy else 5):
                        break
                    identity, *frames = self.router.recv_multipart(copy=True)
                    self.handle(identity, frames)
                if self.stop_reason:
                    break
                if self.can_update():
                    self.train_step()
                now = time.monotonic()
                if now >= deadline:
                    self.stop_reason = "max_minutes"
                if now - last_stats > 0.5:
                    last_stats = now
                    stats = self.stats()
                    self.pub.send_multipart([b"stats", encode("stats", stats)[0]])
                    write_json_atomic(self.run.status, stats)
        finally:
            self.finish(context)

    def finish(self, context: zmq.Context) -> None:
        save_checkpoint(self.run, self.agent, self.counters())
        tmp = self.run.final_policy.with_name(self.run.final_policy.name + ".tmp")
        tmp.write_bytes(weights_to_bytes(self.agent.actor_state_dict()))
        os.replace(tmp, self.run.final_policy)
        stats = self.stats()
        write_json_atomic(self.run.status, stats)
        self.send_progress()  # carries stop=True to every actor
        self.pub.send_multipart([b"stats", encode("stats", stats)[0]])
        time.sleep(0.2)
        self.writer.close()
        self.router.close()
        self.pub.close()
        context.term()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="robot_rl learner process")
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    learner = Learner(run, load_session(run.config))

    def stop(signum, frame):
        learner.stop_reason = learner.stop_reason or f"signal {signum}"

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    learner.run_forever()


if __name__ == "__main__":
    main()
