"""The learner process: stores transitions durably, acknowledges them, trains SAC, publishes weights.

Run as ``python -m robot_rl.learner RUN_DIR [--bind tcp://0.0.0.0:5555]``. Sockets: a CURVE-encrypted
ROUTER that actors' DEALERs talk to (transitions and heartbeats in; acks, status and weights out)
and a PUB for stats. Every transition is checked, deduplicated by ``(actor_session, seq)``, appended
to the replay store and acknowledged only once the store has fsynced it (group commit). A learner
killed at any moment restarts from its last checkpoint and reloads the replay store from disk.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import time
from collections import defaultdict, deque
from pathlib import Path

import numpy as np
import torch
import zmq
from zmq.utils.monitor import recv_monitor_message

from robot_rl.acting import weights_to_bytes
from robot_rl.config import SessionConfig, load_session
from robot_rl.envs import action_bounds, make_env
from robot_rl.episodes import EpisodeWriter, episode_paths, load_episodes_into, write_episode
from robot_rl.intervention import BC, DEMO, ONLINE, ArbiterStep, InterventionTransition, route_transition
from robot_rl.replay import ReplayBuffer, ReplayStore, sample_mixed
from robot_rl.rundir import RunDir, append_jsonl, write_json_atomic
from robot_rl.sac import SACAgent, batch_to_torch
from robot_rl.spaces import ObsSpec, obs_spec_from_space
from robot_rl.transport.keys import ZapAuthenticator, ensure_keys, make_curve_server
from robot_rl.transport.records import INTERVENTION_FIELDS
from robot_rl.transport.wire import WireError, decode, encode

CHECKPOINT_KEEP = 3
COMMIT_EVERY = 64  # group commit: fsync after this many transitions ...
COMMIT_DELAY_S = 0.02  # ... or once the oldest unacknowledged one waited this long (one fsync costs 1-10 ms here)
FORGET_ACTOR_S = 30.0  # identities not heard from for this long no longer get weights
HANDSHAKE_EVENTS = {
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_failed_auth",
}


# ----- checkpoints --------------------------------------------------------------------------
def save_checkpoint(run: RunDir, agent: SACAgent, counters: dict, replay_rng: np.random.Generator | None = None) -> Path:
    """Atomic write (temp file + fsync + rename), keeping the newest ``CHECKPOINT_KEEP``."""
    path = run.checkpoints / f"ckpt_{agent.updates:09d}.pt"
    tmp = path.with_name(path.name + ".tmp")
    rng = {"torch": torch.get_rng_state(), "python": json.dumps(random.getstate()),
           "replay": json.dumps(replay_rng.bit_generator.state) if replay_rng is not None else ""}
    with open(tmp, "wb") as handle:
        torch.save({"agent": agent.state_dict(), "counters": counters, "rng": rng}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    for old in sorted(run.checkpoints.glob("ckpt_*.pt"))[:-CHECKPOINT_KEEP]:
        old.unlink()
    return path


def latest_checkpoint(run: RunDir) -> Path | None:
    found = sorted(run.checkpoints.glob("ckpt_*.pt"))
    return found[-1] if found else None


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def read_spec(run: RunDir, config: SessionConfig) -> dict:
    """Observation/action layout from ``RUN/spec.json``; written from the env when absent (simulation)."""
    if not run.spec.exists():
        write_spec(run, config)
    return json.loads(run.spec.read_text())


def write_spec(run: RunDir, config: SessionConfig) -> dict:
    """``RUN/spec.json``: the observation/action layout the learner builds its networks from."""
    env = make_env(config)
    low, high = action_bounds(env)
    spec = {"obs_spec": obs_spec_from_space(env.observation_space).to_dict(), "action_low": low.tolist(),
            "action_high": high.tolist(), "env": config.env}
    env.close()
    write_json_atomic(run.spec, spec)
    return spec


class Learner:
    def __init__(self, run: RunDir, config: SessionConfig):
        self.run, self.config, self.cfg = run, config, config.learner
        torch.set_num_threads(self.cfg.torch_threads)
        spec = read_spec(run, config)
        self.spec = ObsSpec.from_dict(spec["obs_spec"])
        low, high = np.asarray(spec["action_low"], np.float32), np.asarray(spec["action_high"], np.float32)
        self.action_dim = len(low)
        self.agent = SACAgent(self.spec, len(low), self.cfg, low, high, seed=config.seed)
        self.online = ReplayBuffer(self.spec, len(low), self.cfg.replay_capacity, seed=config.seed)
        self.demos = ReplayBuffer(self.spec, len(low), max(self.cfg.replay_capacity // 4, 1000), seed=config.seed + 7)
        self.demo_transitions = load_episodes_into(self.demos, run.demos, self.spec)
        load_start = time.perf_counter()
        self.store = ReplayStore(run.replay / "online", self.spec, len(low))
        self.intervention = config.intervention
        self.bc_dir = run.root / "bc"  # hg-dagger: intervention segments as episode files for `train-bc --source bc`
        self.bc_open: dict[str, EpisodeWriter] = {}
        self.bc_episodes = len(episode_paths(self.bc_dir))
        self.intervention_counts = {"intervened_steps": 0, "takeovers": 0, "safe_hold_steps": 0, "demo_added": 0,
                                    "bc_steps": 0}
        self.recent_intervened: deque = deque(maxlen=1000)
        if self.intervention is None:
            self.last_next = self.store.load_into(self.online)  # actor session -> its last next_obs (open episodes)
        else:  # the stored raw steps go through the routing again: rlif rewards and demo copies are derived
            self.last_next = self._reload_routed()
        self.replay_load_s = time.perf_counter() - load_start

        self.policy_version = 0
        self._weights_cache: tuple[int, bytes, float] | None = None
        self.identities: dict[bytes, dict] = {}  # ZeroMQ identity -> {"actor_id", "last_s"}
        self.actors: dict[str, dict] = {}  # actor_id -> counters reported in stats
        self.rejected: dict[str, int] = defaultdict(int)
        self.pending_acks: dict[bytes, set[str]] = defaultdict(set)
        self.uncommitted, self.first_uncommitted_s = 0, 0.0
        self.last_nack: dict[str, tuple[int, float]] = {}
        self.episode_returns: deque = deque(maxlen=20)
        self.episode_successes: deque = deque(maxlen=20)
        self.episodes = 0
        self.last_eval: dict = {}
        self.evals_at_bar = 0  # consecutive periodic evaluations at the early-stopping bar
        self.stop_reason = ""
        self.actors_done = False
        self.metrics: dict[str, float] = {}
        self.update_times: deque = deque(maxlen=200)

        checkpoint = latest_checkpoint(run)
        if checkpoint is not None:  # restarting with the same run directory resumes it
            state = load_checkpoint(checkpoint)
            self.agent.load_state_dict(state["agent"])
            self.policy_version = int(state["counters"]["policy_version"])
            self.episodes = int(state["counters"]["episodes"])
            rng = state.get("rng", {})
            if "torch" in rng:
                torch.set_rng_state(rng["torch"])
            if rng.get("python"):
                random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in json.loads(rng["python"])))
            if rng.get("replay"):
                self.online.rng.bit_generator.state = json.loads(rng["replay"])
        append_jsonl(run.logs / "resume.jsonl", {
            "checkpoint": checkpoint.name if checkpoint else None, "learner_updates": self.agent.updates,
            "env_steps": self.env_steps, "replay_loaded": len(self.online), "replay_load_s": round(self.replay_load_s, 3),
            "pid": os.getpid(), "time": time.time(),
        })

        from torch.utils.tensorboard import SummaryWriter  # heavy import, only in the learner

        self.writer = SummaryWriter(str(run.logs))

    @property
    def env_steps(self) -> int:
        """Transitions durably stored, from every actor session of the run."""
        return self.store.count

    # ----- sockets --------------------------------------------------------------------------
    def bind(self, context: zmq.Context, endpoint: str | None = None) -> None:
        keys = ensure_keys(self.run.root)
        self.zap = ZapAuthenticator(context, keys)
        self.router = context.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting actor takes its identity back
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.MAXMSGSIZE, 64 * 1024 * 1024)  # larger frames are dropped before allocation
        make_curve_server(self.router, keys)
        self.monitor = self.router.get_monitor_socket(sum(HANDSHAKE_EVENTS))
        endpoint = endpoint or self._previous_endpoint()
        try:
            self.router.bind(endpoint)
        except zmq.ZMQError:  # the previous port is taken: actors follow endpoints.json to the new one
            endpoint = "tcp://127.0.0.1:*"
            self.router.bind(endpoint)
        transitions = self.router.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.pub = context.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        make_curve_server(self.pub, keys)
        stats_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        write_json_atomic(self.run.endpoints, {"transitions": transitions, "stats": f"tcp://127.0.0.1:{stats_port}",
                                               "pid": os.getpid()})

    def _previous_endpoint(self) -> str:
        """Rebind the port of the previous learner process so that connected actors reconnect by themselves."""
        try:
            previous = json.loads(self.run.endpoints.read_text())["transitions"]
        except (OSError, ValueError, KeyError):
            return "tcp://127.0.0.1:*"
        return previous if previous.startswith("tcp://") else "tcp://127.0.0.1:*"

    def send(self, identity: bytes, frames: list[bytes]) -> None:
        self.router.send_multipart([identity, *frames], copy=False)

    def publish_weights(self, identities=None) -> None:
        """Send the current version's actor weights (safetensors), serialized once per version."""
        if self._weights_cache is None or self._weights_cache[0] != self.policy_version:
            t0 = time.perf_counter()
            blob = weights_to_bytes(self.agent.actor_state_dict())
            self._weights_cache = (self.policy_version, blob, 1000 * (time.perf_counter() - t0))
        version, blob, serialize_ms = self._weights_cache
        header = {"version": version, "learner_updates": self.agent.updates, "published_at": time.time(),
                  "serialize_ms": serialize_ms}
        frames = encode("weights", header, blobs={"weights": blob})
        for identity in identities if identities is not None else list(self.identities):
            self.send(identity, frames)

    def progress_header(self) -> dict:
        return {"learner_updates": self.agent.updates, "policy_version": self.policy_version,
                "env_steps": self.env_steps, "stop": bool(self.stop_reason)}

    def send_progress(self) -> None:
        frames = encode("progress", self.progress_header())
        for identity in self.identities:
            self.send(identity, frames)

    # ----- incoming -------------------------------------------------------------------------
    def handle(self, identity: bytes, frames: list[bytes]) -> None:
        try:
            kind, header, arrays, _ = decode(frames)
        except WireError as err:
            self.rejected[err.reason] += 1
            return
        actor_id = header.get("actor_id")
        if not isinstance(actor_id, str) or not actor_id or len(actor_id) > 64:
            self.rejected["no_actor_id"] += 1
            return
        self.identities[identity] = {"actor_id": actor_id, "last_s": time.monotonic()}
        actor = self.actors.setdefault(actor_id, {"received": 0, "duplicates": 0, "gaps": 0, "acknowledged": 0,
                                                  "spooled": 0, "policy_version": 0, "policy_lag": 0})
        try:
            if kind == "hello":
                self._hello(identity, actor, header)
            elif kind == "transition":
                self._transition(identity, actor, header, arrays)
            elif kind == "episode":
                self.episodes += 1
                self.episode_returns.append(float(header.get("return", 0.0)))
                if header.get("success") is not None:
                    self.episode_successes.append(float(header["success"]))
            elif kind == "eval":
                self._record_eval(header)
            elif kind == "done":
                self.actors_done = True  # stop once the updates owed to the stored data are done
            else:
                self.rejected["unknown_kind"] += 1
        except (KeyError, TypeError, ValueError, AttributeError):
            self.rejected[f"bad_{kind}"[:40]] += 1

    def _hello(self, identity: bytes, actor: dict, header: dict) -> None:
        sessions = header["sessions"]
        if not isinstance(sessions, dict) or len(sessions) > 10_000:
            raise ValueError("sessions")
        actor["spooled"] = int(header.get("spooled", 0))
        next_seq = {str(s): self.store.expected_seq(str(s)) for s in sessions}
        self.send(identity, encode("status", {**self.progress_header(), "next_seq": next_seq}))
        if int(header.get("policy_version", -1)) < self.policy_version:  # a new or reconnected actor
            self.publish_weights([identity])

    def _transition(self, identity: bytes, actor: dict, header: dict, arrays: dict) -> None:
        session, seq = header["actor_session"], header["seq"]
        if not isinstance(session, str) or not 0 < len(session) <= 64 or not isinstance(seq, int) or seq < 0:
            raise ValueError("transition ids")
        expected = self.store.expected_seq(session)
        if seq < expected:  # already stored: the actor resent it after a reconnect
            actor["duplicates"] += 1
            self.pending_acks[identity].add(session)
            return
        if seq > expected:  # something before it was lost in flight: ask for a resend from the gap
            actor["gaps"] += 1
            last = self.last_nack.get(session)
            if last is None or last[0] != expected or time.monotonic() - last[1] > 0.5:
                self.last_nack[session] = (expected, time.monotonic())
                self.send(identity, encode("nack", {"session": session, "next_seq": expected}))
            return
        obs, next_obs = self._observations(arrays)
        if obs is None:  # mid-episode the actor sends only next_obs: obs is the previous transition's next_obs
            if header["episode_start"]:
                raise ValueError("an episode start needs its observation")
            obs = self.last_next.get(session) or self.store.last_next_obs(session)
            if obs is None:
                raise ValueError("no earlier transition of this session to take the observation from")
        elif not np.all(np.isfinite(obs["state"])):
            self.rejected["non_finite"] += 1
            return
        action = arrays["action"]
        if action.shape != (self.action_dim,) or action.dtype != np.float32:
            raise ValueError("action")
        reward = header["reward"]
        if not isinstance(reward, float) or not all(isinstance(header[k], bool) for k in ("terminated", "truncated", "episode_start")):
            raise ValueError("flags")
        if not (np.isfinite(reward) and np.all(np.isfinite(action)) and np.all(np.isfinite(next_obs["state"]))):
            self.rejected["non_finite"] += 1
            return
        policy_version = int(header["policy_version"])
        policy_action = arrays.get("policy_action")
        for key, default in INTERVENTION_FIELDS.items():  # absent: a session without interventions
            if key in header and not (type(header[key]) is type(default) and len(str(header[key])) <= 64):
                raise ValueError(key)
        self.store.append({**header, "policy_version": policy_version}, obs, action, next_obs, policy_action)
        if self.intervention is None:
            self.online.add(obs, action, reward, header["terminated"], header["truncated"], next_obs,
                            episode_start=header["episode_start"], stream=session)
        else:
            self._route({**header, "policy_version": policy_version}, obs, action, policy_action, next_obs)
        if header["terminated"] or header["truncated"]:
            self.last_next.pop(session, None)
        else:
            self.last_next[session] = {k: v.copy() for k, v in next_obs.items()}
        if not self.uncommitted:
            self.first_uncommitted_s = time.monotonic()
        self.uncommitted += 1
        self.pending_acks[identity].add(session)
        actor["received"] += 1
        actor["policy_version"] = policy_version
        actor["policy_lag"] = self.policy_version - policy_version
        if self.uncommitted >= COMMIT_EVERY:
            self.commit()

    def _observations(self, arrays: dict) -> tuple[dict | None, dict]:
        """Checked next_obs and, when sent (episode starts), obs; anything else in the message is refused."""
        expected = {"state": ((self.spec.state_dim,), np.float32),
                    **{k: (tuple(s), np.uint8) for k, s in self.spec.image_shapes.items()}}
        has_obs = "obs/state" in arrays
        policy_action = arrays.get("policy_action")  # human-in-the-loop sessions send it next to the executed one
        if policy_action is not None and (policy_action.shape != (self.action_dim,) or policy_action.dtype != np.float32
                                          or not np.all(np.isfinite(policy_action))):
            raise ValueError("policy_action")
        obs, next_obs = ({} if has_obs else None), {}
        for key, (shape, dtype) in expected.items():
            for prefix, target in (("obs", obs), ("next_obs", next_obs)):
                if target is None:
                    continue
                array = arrays[f"{prefix}/{key}"]
                if array.shape != shape or array.dtype != dtype:
                    raise ValueError(f"{prefix}/{key}")
                target[key] = array
        if len(arrays) != (2 if has_obs else 1) * len(expected) + 1 + (policy_action is not None):
            raise ValueError("extra arrays")
        return obs, next_obs

    # ----- human-in-the-loop routing ---------------------------------------------------------
    def _route(self, header: dict, obs: dict, action: np.ndarray, policy_action: np.ndarray | None, next_obs: dict,
               write_bc: bool = True) -> None:
        """One stored step into the online / demo buffers and the BC episode store, per the session's mode."""
        fields = {k: header.get(k, default) for k, default in INTERVENTION_FIELDS.items()}
        session, intervened = str(header["actor_session"]), bool(fields["intervened"])
        transition = InterventionTransition(
            obs, action if policy_action is None else policy_action, action, float(header["reward"]),
            bool(header["terminated"]), bool(header["truncated"]), next_obs, intervened, str(fields["device"]),
            int(header["policy_version"]), bool(header["episode_start"]))
        counts = self.intervention_counts
        counts["intervened_steps"] += intervened
        counts["takeovers"] += bool(fields["takeover"])
        counts["safe_hold_steps"] += bool(fields["safe_hold"])
        self.recent_intervened.append(intervened)
        if fields["safe_hold"]:  # a silent device held the robot still: that teaches nothing, it is online data only
            routed = [(ONLINE, transition)]
        else:
            step = ArbiterStep(action, intervened, transition.device, takeover=bool(fields["takeover"]))
            routed = route_transition(self.intervention.mode, transition, step, self.intervention.rlif_penalty)
        if session in self.bc_open and (not intervened or transition.episode_start or fields["takeover"]):
            self._flush_bc(session)
        for store, t in routed:
            if store == ONLINE:
                self.online.add(t.obs, t.action, t.reward, t.terminated, t.truncated, t.next_obs,
                                episode_start=t.episode_start, stream=session)
            elif store == DEMO:
                self.demos.add(t.obs, t.action, t.reward, t.terminated, t.truncated, t.next_obs,
                               episode_start=t.episode_start, stream=session)
                counts["demo_added"] += 1
            elif store == BC and write_bc:
                writer = self.bc_open.get(session)
                if writer is None:
                    writer = self.bc_open[session] = EpisodeWriter()
                    writer.start(t.obs)
                writer.step(t.action, t.reward, t.terminated, t.truncated, t.next_obs)
                counts["bc_steps"] += 1
        if session in self.bc_open and (transition.terminated or transition.truncated):
            self._flush_bc(session)

    def _flush_bc(self, session: str) -> None:
        """A finished intervention segment becomes one episode file in RUN/bc/ (written atomically)."""
        writer = self.bc_open.pop(session, None)
        if writer is not None and writer.actions:
            write_episode(self.bc_dir, self.bc_episodes, writer.arrays())
            self.bc_episodes += 1

    def _reload_routed(self) -> dict[str, dict]:
        """Refill the buffers from the whole store through the routing; returns open episodes' last next_obs.

        BC files were written when their segments ended; a segment open at a kill stays in the store only.
        """
        keys = ["state", *self.spec.image_keys]
        last_next: dict[str, dict] = {}
        for header, arrays in self.store.iter_records():
            session = str(header["actor_session"])
            obs = {k: arrays[f"obs/{k}"] for k in keys if f"obs/{k}" in arrays} or last_next.get(session)
            next_obs = {k: arrays[f"next_obs/{k}"] for k in keys}
            if obs is not None:
                self._route(header, obs, arrays["action"], arrays.get("policy_action"), next_obs, write_bc=False)
            last_next[session] = next_obs
            if header["terminated"] or header["truncated"]:
                last_next.pop(session)
        return {s: {k: v.copy() for k, v in obs.items()} for s, obs in last_next.items()}

    def intervention_stats(self) -> dict:
        counts, stored = self.intervention_counts, max(self.store.count, 1)
        recent = float(np.mean(self.recent_intervened)) if self.recent_intervened else 0.0
        return {"mode": self.intervention.mode, **counts, "intervened_share": counts["intervened_steps"] / stored,
                "recent_intervened_share": recent, "bc_episodes": self.bc_episodes}

    def commit(self) -> None:
        """Make the stored transitions durable, then acknowledge them (never the other way round)."""
        self.store.commit()
        self.uncommitted = 0
        for identity, sessions in self.pending_acks.items():
            next_seq = {s: self.store.expected_seq(s) for s in sessions}
            actor = self.actors[self.identities[identity]["actor_id"]]
            actor["acknowledged"] = actor["received"]
            self.send(identity, encode("ack", {**self.progress_header(), "next_seq": next_seq}))
        self.pending_acks.clear()

    def _record_eval(self, header: dict) -> None:
        record = {"env_steps": int(header["env_steps"]), "learner_updates": self.agent.updates,
                  "wall_s": time.monotonic() - self.start_time, "eval_return": float(header["mean_return"]),
                  "success_rate": header.get("success_rate"), "episodes": int(header["episodes"])}
        if header.get("task_metrics"):
            record["task"] = header["task_metrics"]
        self.last_eval = record
        append_jsonl(self.run.eval_log, record)
        self.writer.add_scalar("eval/return", record["eval_return"], record["env_steps"])
        if record["success_rate"] is not None:
            self.writer.add_scalar("eval/success_rate", record["success_rate"], record["env_steps"])
        train = self.config.train
        reached = ((train.stop_at_success_rate is not None and (record["success_rate"] or 0.0) >= train.stop_at_success_rate)
                   or (train.stop_at_eval_return is not None and record["eval_return"] >= train.stop_at_eval_return))
        # one lucky evaluation is not enough: the bar must hold in consecutive evaluations
        self.evals_at_bar = self.evals_at_bar + 1 if reached else 0
        if self.evals_at_bar >= train.stop_after_evals_at_bar:
            self.stop_reason = "eval_bar_reached"

    def _handshake_events(self) -> None:
        while self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            self.rejected[HANDSHAKE_EVENTS.get(event["event"], "handshake_failed")] += 1

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
            self.checkpoint()

    def checkpoint(self) -> Path:
        return save_checkpoint(self.run, self.agent, self.counters(), self.online.rng)

    def counters(self) -> dict:
        return {"env_steps": self.env_steps, "policy_version": self.policy_version, "episodes": self.episodes}

    def stats(self) -> dict:
        elapsed = max(time.monotonic() - self.start_time, 1e-6)
        mean_update = float(np.mean(self.update_times)) if self.update_times else 0.0
        for actor in self.actors.values():
            actor["policy_lag"] = self.policy_version - actor["policy_version"]
        rejected = {**self.rejected, **{f"zap_{k}": v for k, v in self.zap.refused.items()}}
        return {
            "env_steps": self.env_steps, "episodes": self.episodes, "learner_updates": self.agent.updates,
            "updates_per_s": 1.0 / mean_update if mean_update else 0.0,
            "utd": self.agent.updates / max(self.env_steps - self.cfg.warmup_steps, 1),
            "policy_version": self.policy_version,
            "policy_lag": max((a["policy_lag"] for a in self.actors.values()), default=0),
            "recent_return": float(np.mean(self.episode_returns)) if self.episode_returns else None,
            "recent_success": float(np.mean(self.episode_successes)) if self.episode_successes else None,
            "last_eval": self.last_eval, "wall_s": elapsed, "rejected": rejected,
            "demo_transitions": self.demo_transitions, "stop_reason": self.stop_reason,
            "replay": {"stored": self.store.count, "in_memory": len(self.online), "disk_bytes": self.store.disk_bytes(),
                       "load_s": round(self.replay_load_s, 3)},
            "actors": self.actors, **{k: v for k, v in self.metrics.items()},
            **({"interventions": self.intervention_stats()} if self.intervention is not None else {}),
        }

    def run_forever(self, endpoint: str | None = None) -> None:
        context = zmq.Context()
        self.bind(context, endpoint)
        self.start_time = time.monotonic()
        deadline = self.start_time + 60.0 * self.config.train.max_minutes
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        last_stats = 0.0
        try:
            while True:
                busy = self.can_update() and not self.stop_reason
                for _ in range(256):  # drain what arrived, without starving the updates
                    if not poller.poll(0 if busy else 5):
                        break
                    identity, *frames = self.router.recv_multipart(copy=True)
                    self.handle(identity, frames)
                if self.pending_acks and (not self.uncommitted or self.actors_done
                                          or time.monotonic() - self.first_uncommitted_s >= COMMIT_DELAY_S):
                    self.commit()
                self._handshake_events()
                if self.actors_done and not self.can_update():
                    self.stop_reason = self.stop_reason or "max_env_steps"
                if self.stop_reason:
                    break
                if self.can_update():
                    self.train_step()
                now = time.monotonic()
                if now >= deadline:
                    self.stop_reason = "max_minutes"
                if now - last_stats > 0.5:
                    last_stats = now
                    self.identities = {i: a for i, a in self.identities.items() if now - a["last_s"] < FORGET_ACTOR_S}
                    stats = self.stats()
                    self.pub.send_multipart([b"stats", encode("stats", stats)[0]])
                    write_json_atomic(self.run.status, stats)
        finally:
            self.finish(context)

    def finish(self, context: zmq.Context) -> None:
        for session in list(self.bc_open):
            self._flush_bc(session)
        self.commit()
        self.store.close()
        self.checkpoint()
        tmp = self.run.final_policy.with_name(self.run.final_policy.name + ".tmp")
        tmp.write_bytes(weights_to_bytes(self.agent.actor_state_dict()))
        os.replace(tmp, self.run.final_policy)
        self._handshake_events()
        stats = self.stats()
        write_json_atomic(self.run.status, stats)
        self.send_progress()  # carries stop=True to every actor
        self.pub.send_multipart([b"stats", encode("stats", stats)[0]])
        time.sleep(0.2)
        self.writer.close()
        self.zap.close()
        self.monitor.close()
        self.router.close()
        self.pub.close()
        context.term()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="robot_rl learner process")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--bind", help="endpoint for actors, e.g. tcp://0.0.0.0:5555 for a robot on another machine "
                                       "(default: loopback, the previous port of this run)")
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    learner = Learner(run, load_session(run.config))

    def stop(signum, frame):
        learner.stop_reason = learner.stop_reason or f"signal {signum}"

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    learner.run_forever(args.bind)


if __name__ == "__main__":
    main()
