"""A torch ring buffer for N parallel envs: one ``add`` per vector step, one gather per ``sample``.

The actor observation is the critic observation's first columns with noise on the state part,
so per side of a transition only the critic observation and the noisy state columns are stored.
A transition is one row ``[obs | next_obs | action | reward | terminated]``, so sampling a batch is
a single row gather (random access into a large buffer is what costs, not the arithmetic).
"""

from __future__ import annotations

import numpy as np
import torch


class VectorReplay:
    def __init__(self, capacity: int, critic_obs_dim: int, actor_obs_dim: int, noisy_columns: int, action_dim: int,
                 critic_columns=None, seed: int = 0):
        self.capacity, self.size, self.cursor = int(capacity), 0, 0
        self.actor_obs_dim, self.noisy_columns, self.action_dim = actor_obs_dim, noisy_columns, action_dim
        self.side = critic_obs_dim + noisy_columns
        self.rows = torch.zeros(self.capacity, 2 * self.side + action_dim + 2)
        # which critic-observation columns the critic is given (None: all)
        self.critic_columns = None if critic_columns is None else torch.as_tensor(critic_columns, dtype=torch.long)
        self.generator = torch.Generator().manual_seed(seed)

    def add(self, actor_obs, critic_obs, action, reward, terminated, next_actor_obs, next_critic_obs):
        k = self.noisy_columns
        row = np.concatenate([
            critic_obs, actor_obs[:, :k], next_critic_obs, next_actor_obs[:, :k], np.asarray(action, np.float32),
            np.asarray(reward, np.float32)[:, None], np.asarray(terminated, np.float32)[:, None],
        ], axis=1)
        n = len(row)
        index = (self.cursor + np.arange(n)) % self.capacity
        self.rows[torch.from_numpy(index)] = torch.from_numpy(row)
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    @property
    def reward(self) -> torch.Tensor:
        return self.rows[:, 2 * self.side + self.action_dim]

    @property
    def terminated(self) -> torch.Tensor:
        return self.rows[:, 2 * self.side + self.action_dim + 1]

    def recompute_rewards(self, weights) -> None:
        """Rescore every stored transition under new reward weights (L2F's curriculum with recalculated rewards).

        The L2F reward depends only on the noise-free state before the step (critic columns 0:18:
        position error, rotation matrix, velocity error, body rates), the action and termination.
        """
        rows = self.rows[: self.size]
        state, a = rows[:, :18], self.action_dim
        action = rows[:, 2 * self.side: 2 * self.side + a]
        terminated = rows[:, 2 * self.side + a + 1]
        qw_squared = (1.0 + state[:, 3] + state[:, 7] + state[:, 11]) / 4.0  # from the rotation matrix's trace
        cost = weights.position * state[:, 0:3].square().sum(1) + weights.orientation * (1.0 - qw_squared)
        cost += weights.linear_velocity * state[:, 12:15].square().sum(1)
        cost += weights.angular_velocity * state[:, 15:18].square().sum(1)
        cost += weights.action * (action - weights.action_baseline).square().sum(1)
        reward = torch.where(terminated > 0, torch.full_like(cost, weights.termination_penalty),
                             weights.constant - weights.scale * cost)
        rows[:, 2 * self.side + a] = reward

    def _split_side(self, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        critic = packed[:, : -self.noisy_columns]
        actor = torch.cat([packed[:, -self.noisy_columns:], critic[:, self.noisy_columns: self.actor_obs_dim]], dim=1)
        if self.critic_columns is not None:
            critic = critic.index_select(1, self.critic_columns)
        return actor, critic

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.size, (batch_size,), generator=self.generator)
        batch = self.rows.index_select(0, idx)  # 95 us vs 366 us for rows[idx]: 256 random rows of 200k
        s, a = self.side, self.action_dim
        obs, critic_obs = self._split_side(batch[:, :s])
        next_obs, next_critic_obs = self._split_side(batch[:, s: 2 * s])
        return {"obs": obs, "critic_obs": critic_obs, "action": batch[:, 2 * s: 2 * s + a],
                "reward": batch[:, 2 * s + a], "terminated": batch[:, 2 * s + a + 1],
                "next_obs": next_obs, "next_critic_obs": next_critic_obs}
