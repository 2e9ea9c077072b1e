"""Replay: next observations stored once, overwritten data never sampled, RLPD 50/50 mixing."""

import numpy as np

from robot_rl.replay import ReplayBuffer, sample_mixed
from robot_rl.spaces import ObsSpec


def _fill(buffer, episodes, length, reward, stream="a", offset=0.0):
    for e in range(episodes):
        for t in range(length):
            obs = {"state": np.array([offset + e, t], np.float32)}
            nxt = {"state": np.array([offset + e, t + 1], np.float32)}
            buffer.add(obs, np.zeros(1, np.float32), reward, t == length - 1, False, nxt, episode_start=(t == 0), stream=stream)


def test_next_observation_matches_and_is_not_stored_twice():
    buffer = ReplayBuffer(ObsSpec(2), 1, capacity=1000)
    _fill(buffer, episodes=10, length=20, reward=0.0)
    assert len(buffer) == 200
    assert buffer._obs_cursor == 10 * 21  # T+1 observations per episode, not 2T
    batch = buffer.sample(500)
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 0], batch["obs"]["state"][:, 0])
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 1], batch["obs"]["state"][:, 1] + 1)
    assert np.all(batch["terminated"] == (batch["obs"]["state"][:, 1] == 19))


def test_interleaved_actors_keep_their_own_episodes():
    buffer = ReplayBuffer(ObsSpec(2), 1, capacity=1000)
    for t in range(30):  # two actors stepping alternately
        for stream, offset in (("a", 0.0), ("b", 100.0)):
            obs = {"state": np.array([offset, t], np.float32)}
            nxt = {"state": np.array([offset, t + 1], np.float32)}
            buffer.add(obs, np.zeros(1, np.float32), 0.0, False, t == 29, nxt, episode_start=(t == 0), stream=stream)
    batch = buffer.sample(300)
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 0], batch["obs"]["state"][:, 0])
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 1], batch["obs"]["state"][:, 1] + 1)


def test_wrapped_ring_never_returns_overwritten_observations():
    buffer = ReplayBuffer(ObsSpec(2), 1, capacity=50)
    _fill(buffer, episodes=40, length=7, reward=0.0)
    batch = buffer.sample(2000)
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 1], batch["obs"]["state"][:, 1] + 1)
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 0], batch["obs"]["state"][:, 0])
    assert batch["obs"]["state"][:, 0].min() >= 30  # only the newest episodes survive


def test_mixed_batch_is_half_online_half_demo():
    online = ReplayBuffer(ObsSpec(2), 1, capacity=1000, seed=1)
    demos = ReplayBuffer(ObsSpec(2), 1, capacity=1000, seed=2)
    _fill(online, 5, 20, reward=0.0)
    _fill(demos, 5, 20, reward=1.0)
    batch = sample_mixed(online, demos, batch_size=256, demo_ratio=0.5)
    assert batch["reward"].shape == (256,)
    assert batch["reward"].sum() == 128  # demo transitions carry reward 1
    only_online = sample_mixed(online, demos, batch_size=256, demo_ratio=0.0)
    assert only_online["reward"].sum() == 0
