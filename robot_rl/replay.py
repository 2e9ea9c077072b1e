"""Replay: a bounded in-memory ring the learner samples from, and the durable store behind it.

In memory, each observation is written once into an observation ring; a transition holds the
slots of its observation and next observation plus their write generations, so a transition
whose observation was overwritten is never sampled. Several actors can interleave episodes.

On disk (``ReplayStore``), transitions are appended to chunk files (length+CRC framed wire
records), fsynced before they are acknowledged, sealed every ``chunk_transitions`` and listed in
``manifest.json``. A transition stores its observation only at an episode start; otherwise the
observation is the previous transition's next-observation of the same actor session, so nothing
is stored twice and no observation is ever linked across actor sessions (an actor restart
begins a new session with a fresh reset).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np

from robot_rl.spaces import ObsSpec
from robot_rl.transport.records import INTERVENTION_FIELDS, RecordFile, fsync_dir, scan_records
from robot_rl.transport.wire import decode, encode


class ReplayBuffer:
    def __init__(self, spec: ObsSpec, action_dim: int, capacity: int, seed: int = 0):
        self.spec, self.capacity = spec, capacity
        # one extra observation slot per ~10 transitions covers the final observation of short episodes
        self.obs_capacity = capacity + capacity // 10 + 2
        self.observations = spec.empty(self.obs_capacity)
        self.obs_generation = np.zeros(self.obs_capacity, np.int64)
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.truncated = np.zeros(capacity, np.bool_)
        self.obs_slot = np.zeros(capacity, np.int64)
        self.next_slot = np.zeros(capacity, np.int64)
        self.obs_gen = np.full(capacity, -1, np.int64)
        self.next_gen = np.full(capacity, -1, np.int64)
        self._obs_cursor = 0
        self._cursor = 0
        self.size = 0
        self.total_added = 0
        self._pending_next: dict[str, tuple[int, int]] = {}  # stream -> (slot, generation) of its last next_obs
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def _write_obs(self, obs: dict[str, np.ndarray]) -> tuple[int, int]:
        slot = self._obs_cursor
        self._obs_cursor = (slot + 1) % self.obs_capacity
        for key, array in self.observations.items():
            array[slot] = obs[key]
        self.obs_generation[slot] += 1
        return slot, int(self.obs_generation[slot])

    def add(self, obs, action, reward, terminated, truncated, next_obs, episode_start: bool, stream: str = "") -> None:
        """Append one transition. ``stream`` separates interleaved episodes of different actors.

        When ``episode_start`` is false, ``obs`` is the previous transition's ``next_obs`` of the same
        stream and is not written again.
        """
        pending = self._pending_next.get(stream)
        if episode_start or pending is None or self.obs_generation[pending[0]] != pending[1]:
            obs_ref = self._write_obs(obs)
        else:
            obs_ref = pending
        next_ref = self._write_obs(next_obs)
        self._pending_next[stream] = next_ref
        if terminated or truncated:
            self._pending_next.pop(stream, None)

        i = self._cursor
        self.action[i] = action
        self.reward[i] = reward
        self.terminated[i] = float(terminated)
        self.truncated[i] = bool(truncated)
        self.obs_slot[i], self.obs_gen[i] = obs_ref
        self.next_slot[i], self.next_gen[i] = next_ref
        self._cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.total_added += 1

    def _valid(self, idx: np.ndarray) -> np.ndarray:
        return (self.obs_generation[self.obs_slot[idx]] == self.obs_gen[idx]) & (
            self.obs_generation[self.next_slot[idx]] == self.next_gen[idx]
        )

    def sample_indices(self, count: int) -> np.ndarray:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        chosen = np.empty(0, np.int64)
        while len(chosen) < count:
            idx = self.rng.integers(0, self.size, size=2 * count)
            chosen = np.concatenate([chosen, idx[self._valid(idx)]])
        return chosen[:count]

    def gather(self, idx: np.ndarray) -> dict:
        obs_slots, next_slots = self.obs_slot[idx], self.next_slot[idx]
        return {
            "obs": {k: v[obs_slots] for k, v in self.observations.items()},
            "next_obs": {k: v[next_slots] for k, v in self.observations.items()},
            "action": self.action[idx],
            "reward": self.reward[idx],
            "terminated": self.terminated[idx],
        }

    def sample(self, count: int) -> dict:
        return self.gather(self.sample_indices(count))


def concat_batches(first: dict, second: dict) -> dict:
    out = {}
    for key, value in first.items():
        if isinstance(value, dict):
            out[key] = {k: np.concatenate([value[k], second[key][k]]) for k in value}
        else:
            out[key] = np.concatenate([value, second[key]])
    return out


def sample_mixed(online: ReplayBuffer, demos: ReplayBuffer | None, batch_size: int, demo_ratio: float) -> dict:
    """RLPD symmetric sampling: ``demo_ratio`` of the batch from demos, the rest from online data."""
    if demos is None or len(demos) == 0 or demo_ratio <= 0.0:
        return online.sample(batch_size)
    n_demo = int(round(batch_size * demo_ratio))
    return concat_batches(online.sample(batch_size - n_demo), demos.sample(n_demo))


# ----- durable store ------------------------------------------------------------------------
STORE_FORMAT = 1
CHUNK_TRANSITIONS = 1000  # sealed (renamed + listed in the manifest) every this many transitions
STORED_HEADER_KEYS = ("actor_id", "actor_session", "seq", "policy_version", "reward", "terminated", "truncated",
                      "episode_start")


class StoreError(RuntimeError):
    """A replay store that cannot be used as it is; the message says what to do."""


def transition_digest(session: str, seq: int, obs: dict, action, reward: float, terminated: bool, truncated: bool,
                      next_obs: dict) -> str:
    """Content hash of one transition, identical on the actor (spool) and the learner (store) side."""
    digest = hashlib.sha256(f"{session}/{int(seq)}/{float(reward)!r}/{bool(terminated)}/{bool(truncated)}".encode())
    digest.update(np.ascontiguousarray(action, np.float32).tobytes())
    for prefix, observation in (("obs", obs), ("next_obs", next_obs)):
        for key in sorted(observation):
            digest.update(f"{prefix}/{key}".encode())
            digest.update(np.ascontiguousarray(observation[key]).tobytes())
    return digest.hexdigest()


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_name(".manifest.json.tmp")
    with open(tmp, "w") as handle:
        json.dump(manifest, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class ReplayStore:
    """Append-only transitions on disk; ``commit`` makes everything appended so far durable."""

    def __init__(self, directory: str | Path, spec: ObsSpec, action_dim: int, chunk_transitions: int = CHUNK_TRANSITIONS):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.spec, self.action_dim, self.chunk_transitions = spec, action_dim, chunk_transitions
        self.manifest_path = self.directory / "manifest.json"
        if self.manifest_path.exists():
            self.manifest = json.loads(self.manifest_path.read_text())
            if self.manifest.get("format") != STORE_FORMAT:
                raise StoreError(f"{self.manifest_path}: store format {self.manifest.get('format')} is not "
                                 f"{STORE_FORMAT}; start a new run directory")
            if self.manifest["spec"] != spec.to_dict() or self.manifest["action_dim"] != action_dim:
                raise StoreError(f"{self.directory} holds transitions of another observation/action layout; "
                                 f"use a new run directory for this task")
        else:
            self.manifest = {"format": STORE_FORMAT, "spec": spec.to_dict(), "action_dim": action_dim, "chunks": [],
                             "next_seq": {}}
            _write_manifest(self.manifest_path, self.manifest)
        self.next_seq: dict[str, int] = dict(self.manifest["next_seq"])
        listed = {c["file"] for c in self.manifest["chunks"]}
        for path in sorted(self.directory.glob("chunk_*.bin")):
            if path.name not in listed:  # sealed, but the kill came before the manifest listed it
                self._list_chunk(path, self._scan_sessions(path))
        self.count = sum(c["count"] for c in self.manifest["chunks"])
        self._open: RecordFile | None = None
        self._open_count, self._open_sessions = 0, {}
        self._dirty = False
        for path in sorted(self.directory.glob("chunk_*.open")):
            sessions = self._scan_sessions(path)
            self._open = RecordFile(path)  # truncates a record torn by the kill
            self._open_count = sum(last - first + 1 for first, last in sessions.values())
            self._open_sessions = sessions
            self.count += self._open_count
        for chunk_sessions in [*(c["sessions"] for c in self.manifest["chunks"]), self._open_sessions]:
            for session, (_, last) in chunk_sessions.items():
                self.next_seq[session] = max(self.next_seq.get(session, 0), last + 1)

    # ----- writing ------------------------------------------------------------------------
    def expected_seq(self, session: str) -> int:
        return self.next_seq.get(session, 0)

    def append(self, header: dict, obs: dict, action: np.ndarray, next_obs: dict,
               policy_action: np.ndarray | None = None) -> None:
        """Append one transition; ``header["seq"]`` must be the session's next expected seq."""
        session, seq = str(header["actor_session"]), int(header["seq"])
        if seq != self.expected_seq(session):
            raise ValueError(f"session {session}: expected seq {self.expected_seq(session)}, got {seq}")
        arrays = {"action": np.asarray(action, np.float32)}
        if policy_action is not None:  # human-in-the-loop: what the policy proposed, next to what ran
            arrays["policy_action"] = np.asarray(policy_action, np.float32)
        if header["episode_start"] or seq == 0:
            arrays.update({f"obs/{k}": v for k, v in obs.items()})
        arrays.update({f"next_obs/{k}": v for k, v in next_obs.items()})
        if self._open is None:
            self._open = RecordFile(self.directory / f"chunk_{len(self.manifest['chunks']):06d}.open")
            self._open_count, self._open_sessions = 0, {}
        stored = {k: header[k] for k in STORED_HEADER_KEYS}
        stored.update({k: header[k] for k in INTERVENTION_FIELDS if k in header})
        self._open.append(encode("stored", stored, arrays))
        first, _ = self._open_sessions.get(session, (seq, seq))
        self._open_sessions[session] = (first, seq)
        self._open_count += 1
        self.next_seq[session] = seq + 1
        self.count += 1
        self._dirty = True
        if self._open_count >= self.chunk_transitions:
            self._seal()

    def commit(self) -> bool:
        """fsync what was appended since the last commit (group commit). True if anything was synced."""
        if not self._dirty:
            return False
        self._open.sync()
        self._dirty = False
        return True

    def _seal(self) -> None:
        """A full chunk: fsync, rename ``.open`` to ``.bin``, list it in the manifest."""
        self._open.sync()
        self._dirty = False
        self._open.close()
        sealed = self._open.path.with_suffix(".bin")
        os.replace(self._open.path, sealed)
        fsync_dir(self.directory)
        self._list_chunk(sealed, self._open_sessions)
        self._open, self._open_count, self._open_sessions = None, 0, {}

    def _list_chunk(self, path: Path, sessions: dict) -> None:
        self.manifest["chunks"].append({
            "file": path.name, "count": sum(last - first + 1 for first, last in sessions.values()),
            "bytes": path.stat().st_size, "sessions": {s: list(r) for s, r in sessions.items()},
        })
        self.manifest["chunks"].sort(key=lambda c: c["file"])
        for session, (_, last) in sessions.items():
            self.manifest["next_seq"][session] = max(self.manifest["next_seq"].get(session, 0), last + 1)
        _write_manifest(self.manifest_path, self.manifest)

    def close(self) -> None:
        self.commit()
        if self._open is not None:
            self._open.close()
            self._open = None

    # ----- reading ------------------------------------------------------------------------
    @staticmethod
    def _scan_sessions(path: Path) -> dict[str, tuple[int, int]]:
        sessions: dict[str, tuple[int, int]] = {}
        for _, _, frames in scan_records(path):
            _, header, _, _ = decode(frames)
            session, seq = str(header["actor_session"]), int(header["seq"])
            first, _ = sessions.get(session, (seq, seq))
            sessions[session] = (first, seq)
        return sessions

    def chunk_paths(self) -> list[Path]:
        paths = [self.directory / c["file"] for c in self.manifest["chunks"]]
        return paths + ([self._open.path] if self._open is not None else [])

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.chunk_paths())

    def iter_records(self, paths: list[Path] | None = None) -> Iterator[tuple[dict, dict]]:
        for path in self.chunk_paths() if paths is None else paths:
            for _, _, frames in scan_records(path):
                _, header, arrays, _ = decode(frames)
                yield header, arrays

    def iter_transitions(self) -> Iterator[tuple[dict, dict, np.ndarray, dict]]:
        """Every stored transition with its observation rebuilt: (header, obs, action, next_obs)."""
        last_next: dict[str, dict] = {}
        for header, arrays in self.iter_records():
            obs, next_obs = self._split(arrays)
            session = str(header["actor_session"])
            yield header, obs or last_next[session], arrays["action"], next_obs
            last_next[session] = next_obs

    def _split(self, arrays: dict) -> tuple[dict, dict]:
        keys = ["state", *self.spec.image_keys]
        obs = {k: arrays[f"obs/{k}"] for k in keys if f"obs/{k}" in arrays}
        return obs, {k: arrays[f"next_obs/{k}"] for k in keys}

    def load_into(self, buffer: ReplayBuffer, limit: int | None = None) -> dict[str, dict]:
        """Refill ``buffer`` with (about ``limit``, default its capacity) newest transitions.

        Returns each actor session's last next-observation where its episode is still open, so that a
        continuing session's next transition (sent without its observation) can be linked.
        """
        limit = buffer.capacity if limit is None else limit
        paths, counts = self.chunk_paths(), [c["count"] for c in self.manifest["chunks"]] + [self._open_count]
        start, total = len(paths), 0
        while start > 0 and total < limit:
            start -= 1
            total += counts[start]
        last_next = {}
        for header, arrays in self.iter_records(paths[start:]):
            obs, next_obs = self._split(arrays)
            session = str(header["actor_session"])
            if obs or session in last_next:
                buffer.add(obs or last_next[session], arrays["action"], float(header["reward"]),
                           bool(header["terminated"]), bool(header["truncated"]), next_obs, episode_start=bool(obs),
                           stream=session)
            # else: its observation lies in an older chunk; keep only the link to the next transition
            last_next[session] = next_obs
            if header["terminated"] or header["truncated"]:
                last_next.pop(session)
        return {s: {k: v.copy() for k, v in obs.items()} for s, obs in last_next.items()}

    def last_next_obs(self, session: str) -> dict | None:
        """The newest stored next-observation of ``session`` (None if it has none), read from disk."""
        chunks = [*zip(self.chunk_paths(), [c["sessions"] for c in self.manifest["chunks"]] + [self._open_sessions])]
        for path, sessions in reversed(chunks):
            if session in sessions:
                found = None
                for header, arrays in self.iter_records([path]):
                    if header["actor_session"] == session:
                        found = arrays
                return {k: v.copy() for k, v in self._split(found)[1].items()}
        return None
