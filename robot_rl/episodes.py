"""Episode files for demonstrations: one ``.npz`` per episode, loaded without pickle.

An episode of T steps holds T+1 observations (the last one is the final next-observation), T
actions, rewards, and ``terminated``/``truncated`` flags kept apart.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from robot_rl.replay import ReplayBuffer
from robot_rl.spaces import ObsSpec


class EpisodeWriter:
    """Collects one episode step by step; ``finish`` writes it atomically."""

    def __init__(self):
        self.observations: list[dict[str, np.ndarray]] = []
        self.actions, self.rewards, self.terminated, self.truncated = [], [], [], []

    def start(self, obs: dict[str, np.ndarray]) -> None:
        self.__init__()
        self.observations.append(obs)

    def step(self, action, reward, terminated, truncated, next_obs) -> None:
        self.actions.append(np.asarray(action, np.float32))
        self.rewards.append(float(reward))
        self.terminated.append(bool(terminated))
        self.truncated.append(bool(truncated))
        self.observations.append(next_obs)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {f"obs/{k}": np.stack([o[k] for o in self.observations]) for k in self.observations[0]}
        out.update(
            action=np.stack(self.actions),
            reward=np.asarray(self.rewards, np.float32),
            terminated=np.asarray(self.terminated, np.bool_),
            truncated=np.asarray(self.truncated, np.bool_),
        )
        return out


def write_episode(directory: str | Path, index: int, arrays: dict[str, np.ndarray]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"episode_{index:06d}.npz"
    tmp = directory / f".episode_{index:06d}.tmp.npz"
    with open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    return final


def episode_paths(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    return sorted(directory.glob("episode_*.npz")) if directory.is_dir() else []


def read_episode(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def load_episodes_into(buffer: ReplayBuffer, directory: str | Path, spec: ObsSpec) -> int:
    """Append every episode file in ``directory`` to ``buffer``; returns the number of transitions."""
    count = 0
    for path in episode_paths(directory):
        episode = read_episode(path)
        keys = ["state", *spec.image_keys]
        missing = [k for k in keys if f"obs/{k}" not in episode]
        if missing:
            raise ValueError(f"{path}: episode lacks observation keys {missing}; it was recorded for another task")
        steps = len(episode["action"])
        for t in range(steps):
            buffer.add(
                {k: episode[f"obs/{k}"][t] for k in keys},
                episode["action"][t],
                episode["reward"][t],
                episode["terminated"][t],
                episode["truncated"][t],
                {k: episode[f"obs/{k}"][t + 1] for k in keys},
                episode_start=(t == 0),
                stream=str(path),
            )
        count += steps
    return count
