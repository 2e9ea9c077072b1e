"""In-memory replay: transitions reference observation slots, so next-observations are not stored twice.

Each observation is written once into an observation ring; a transition holds the slots of its
observation and next observation plus their write generations, so a transition whose
observation was overwritten is never sampled. Several actors can interleave episodes.
"""

from __future__ import annotations

import numpy as np

from robot_rl.spaces import ObsSpec


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
