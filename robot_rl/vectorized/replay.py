"""A torch ring buffer for N parallel envs: one ``add`` per vector step, no Python loop over envs.

The actor observation is the critic observation's first columns with noise on the state part,
so only the critic observation (156) and the noisy state columns (18) are stored per side of a
transition; ``sample`` rebuilds the actor observation.
"""

from __future__ import annotations

import numpy as np
import torch


class VectorReplay:
    def __init__(self, capacity: int, critic_obs_dim: int, actor_obs_dim: int, noisy_columns: int, action_dim: int,
                 critic_columns=None, seed: int = 0):
        self.capacity, self.size, self.cursor = int(capacity), 0, 0
        self.actor_obs_dim, self.noisy_columns = actor_obs_dim, noisy_columns
        # which critic-observation columns the critic is given (None: all)
        self.critic_columns = None if critic_columns is None else torch.as_tensor(critic_columns, dtype=torch.long)
        width = critic_obs_dim + noisy_columns
        self.obs = torch.zeros(self.capacity, width)
        self.next_obs = torch.zeros(self.capacity, width)
        self.action = torch.zeros(self.capacity, action_dim)
        self.reward = torch.zeros(self.capacity)
        self.terminated = torch.zeros(self.capacity)
        self.generator = torch.Generator().manual_seed(seed)

    def _pack(self, actor_obs: np.ndarray, critic_obs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.concatenate([critic_obs, actor_obs[:, : self.noisy_columns]], axis=1))

    def add(self, actor_obs, critic_obs, action, reward, terminated, next_actor_obs, next_critic_obs):
        n = len(action)
        rows = (self.cursor + torch.arange(n)) % self.capacity
        self.obs[rows] = self._pack(actor_obs, critic_obs)
        self.next_obs[rows] = self._pack(next_actor_obs, next_critic_obs)
        self.action[rows] = torch.from_numpy(np.asarray(action, np.float32))
        self.reward[rows] = torch.from_numpy(np.asarray(reward, np.float32))
        self.terminated[rows] = torch.from_numpy(np.asarray(terminated, np.float32))
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def _unpack(self, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        critic = packed[:, : -self.noisy_columns]
        actor = torch.cat([packed[:, -self.noisy_columns:], critic[:, self.noisy_columns: self.actor_obs_dim]], dim=1)
        if self.critic_columns is not None:
            critic = critic[:, self.critic_columns]
        return actor, critic

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (batch_size,), generator=self.generator)
        obs, critic_obs = self._unpack(self.obs[idx])
        next_obs, next_critic_obs = self._unpack(self.next_obs[idx])
        return {"obs": obs, "critic_obs": critic_obs, "action": self.action[idx], "reward": self.reward[idx],
                "terminated": self.terminated[idx], "next_obs": next_obs, "next_critic_obs": next_critic_obs}
