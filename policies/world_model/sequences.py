"""Horizon-long sub-trajectories from a ``robot_rl.replay.ReplayBuffer``, for the world model's update.

The buffer links a transition's observation to the previous transition's next-observation slot
when they belong to the same episode of the same stream, so transitions i..i+H-1 form a sequence
exactly when each one's next-observation slot (and write generation) is the following one's
observation slot and none of them but the last ends the episode.
"""

from __future__ import annotations

import numpy as np


def valid_starts(buffer, idx: np.ndarray, horizon: int) -> np.ndarray:
    """Which ring indices ``idx`` begin a sequence of ``horizon`` linked, still-stored transitions."""
    ok = np.ones(len(idx), bool)
    for k in range(horizon):
        current = (idx + k) % buffer.capacity
        ok &= (idx + k < buffer.size) | (buffer.size == buffer.capacity)
        ok &= buffer._valid(current)
        if k < horizon - 1:
            following = (idx + k + 1) % buffer.capacity
            ok &= (buffer.next_slot[current] == buffer.obs_slot[following]) & (buffer.next_gen[current] == buffer.obs_gen[following])
            ok &= ~(buffer.terminated[current].astype(bool) | buffer.truncated[current])
    return ok


def sample_sequences(buffer, count: int, horizon: int, max_tries: int = 64) -> dict[str, np.ndarray]:
    """``count`` random sequences: state [H+1, B, S], action [H, B, A], reward [H, B], terminated [H, B]."""
    if buffer.size == 0:
        raise ValueError("cannot sample sequences from an empty replay buffer")
    chosen = np.empty(0, np.int64)
    for _ in range(max_tries):
        idx = buffer.rng.integers(0, buffer.size, size=2 * count)
        chosen = np.concatenate([chosen, idx[valid_starts(buffer, idx, horizon)]])
        if len(chosen) >= count:
            break
    else:
        raise ValueError(f"the replay buffer holds too few sequences of {horizon} linked transitions; collect more data")
    rows = (chosen[:count][None, :] + np.arange(horizon)[:, None]) % buffer.capacity  # [H, B]
    states = buffer.observations["state"]
    return {
        "state": np.concatenate([states[buffer.obs_slot[rows]], states[buffer.next_slot[rows[-1:]]]]),
        "action": buffer.action[rows],
        "reward": buffer.reward[rows],
        "terminated": buffer.terminated[rows],
    }


def concat_sequences(first: dict, second: dict) -> dict:
    """Two sequence batches side by side (batch axis 1)."""
    return {k: np.concatenate([first[k], second[k]], axis=1) for k in first}
