"""Latency wrappers, measured through probe envs whose response to an action is known exactly."""

import gymnasium as gym
import numpy as np
import pytest

from sim2real.latency import ActionDelay, Jitter, ObservationDelay

PERIOD_S = 0.01
SUBSTEPS = 10


class SubstepIntegrator(gym.Env):
    """x' = a, integrated over 10 substeps per 10 ms period; obs = (time_s, x); logs each substep's action."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.control_period_s = PERIOD_S

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.time_s, self.x, self.applied = 0.0, 0.0, []
        return np.array([self.time_s, self.x]), {}

    def _substep_actions(self, action):
        return [float(action[0])] * SUBSTEPS

    def step(self, action):
        for a in self._substep_actions(action):
            self.applied.append(a)
            self.x += a * PERIOD_S / SUBSTEPS
        self.time_s += PERIOD_S
        return np.array([self.time_s, self.x]), 0.0, False, False, {}


class HookedIntegrator(SubstepIntegrator):
    """The same plant with the substep hook a delay uses to split a period between two actions."""

    _pending = None

    def set_delayed_action(self, previous_action, fraction):
        self._pending = (float(previous_action[0]), round(fraction * SUBSTEPS))

    def _substep_actions(self, action):
        actions = super()._substep_actions(action)
        if self._pending is not None:
            previous, k = self._pending
            actions[:k] = [previous] * k
            self._pending = None
        return actions


def _run_impulse(env, impulse_step=5, steps=12):
    env.reset(seed=0)
    xs = []
    for t in range(steps):
        obs, *_ = env.step(np.array([1.0 if t == impulse_step else 0.0], np.float32))
        xs.append(obs[1])
    return np.array(xs)


@pytest.mark.parametrize("delay_ms", [0.0, 30.0, 25.0, 7.5])
def test_observation_delay_returns_the_state_from_delay_ago(delay_ms):
    env = ObservationDelay(SubstepIntegrator(), delay_ms)
    obs, _ = env.reset()
    for _ in range(6):
        obs, *_ = env.step(np.zeros(1, np.float32))
    true_time_s = 6 * PERIOD_S
    # obs[0] is the plant's clock, a ramp, so interpolation recovers the delay exactly
    assert true_time_s - obs[0] == pytest.approx(delay_ms / 1000.0, abs=1e-12)


def test_observation_delay_hold_rounds_up_to_the_older_sample():
    env = ObservationDelay(SubstepIntegrator(), 25.0, fractional="hold")
    env.reset()
    for _ in range(6):
        obs, *_ = env.step(np.zeros(1, np.float32))
    assert 6 * PERIOD_S - obs[0] == pytest.approx(0.03)


@pytest.mark.parametrize("delay_ms", [0.0, 10.0, 25.0, 33.0])
def test_action_delay_with_hook_switches_at_the_delayed_substep(delay_ms):
    env = ActionDelay(HookedIntegrator(), delay_ms)
    assert env.fractional == "hook"
    _run_impulse(env, impulse_step=5)
    applied = np.array(env.unwrapped.applied)
    first = int(np.flatnonzero(applied)[0])
    substep_ms = 1000 * PERIOD_S / SUBSTEPS
    assert (first - 5 * SUBSTEPS) * substep_ms == pytest.approx(delay_ms, abs=substep_ms / 2)
    assert np.count_nonzero(applied) == SUBSTEPS  # the action runs for exactly one period, shifted


def test_action_delay_without_hook_blends_and_keeps_the_mean_delay():
    env = ActionDelay(SubstepIntegrator(), 25.0)
    assert env.fractional == "blend"
    _run_impulse(env, impulse_step=5, steps=20)
    applied = np.array(env.unwrapped.applied)
    # the blended action has the same integral and centroid as the split one: 25 ms later
    times_ms = (np.arange(len(applied)) + 0.5) * 1000 * PERIOD_S / SUBSTEPS
    centroid_ms = (applied * times_ms).sum() / applied.sum()
    assert applied.sum() * PERIOD_S / SUBSTEPS == pytest.approx(PERIOD_S)
    assert centroid_ms - (5 * 1000 * PERIOD_S + 5.0) == pytest.approx(25.0)


def test_action_delay_round_mode_and_initial_action():
    env = ActionDelay(SubstepIntegrator(), 26.0, fractional="round", initial_action=np.array([0.5]))
    env.reset()
    obs, *_ = env.step(np.zeros(1, np.float32))
    assert env.unwrapped.applied[0] == 0.5  # nothing sent yet has arrived: the initial action runs
    _run_impulse(env, impulse_step=2, steps=8)
    assert np.flatnonzero(np.array(env.unwrapped.applied) == 1.0)[0] // SUBSTEPS == 2 + 3  # 26 ms rounds to 3 periods


def test_jitter_draws_a_seeded_delay_per_step_within_range():
    def delays(seed):
        env = Jitter(HookedIntegrator(), (2.0, 8.0), seed=seed)
        env.reset()
        out = []
        for t in range(200):
            env.step(np.array([float(t % 2)], np.float32))
            out.append(env.last_delay_ms)
        return np.array(out), np.array(env.unwrapped.applied).reshape(-1, SUBSTEPS)

    d1, applied = delays(3)
    d2, _ = delays(3)
    np.testing.assert_array_equal(d1, d2)
    assert 2.0 <= d1.min() and d1.max() <= 8.0 and d1.std() > 1.0
    # measured through the plant: substeps still running the previous action = the drawn delay
    switches = applied[1:] != applied[1:, -1:]
    measured_ms = switches.sum(axis=1) * 1000 * PERIOD_S / SUBSTEPS
    np.testing.assert_allclose(measured_ms, d1[1:], atol=0.5)


def test_jitter_resamples_measured_delays_on_observations():
    measured_ms = np.array([1.0, 4.0, 9.0])
    env = Jitter(SubstepIntegrator(), measured_ms, on="observation", seed=1)
    env.reset()
    seen = set()
    for t in range(1, 60):
        obs, *_ = env.step(np.zeros(1, np.float32))
        lag_ms = round((t * PERIOD_S - obs[0]) * 1000, 6)
        assert lag_ms == env.last_delay_ms
        seen.add(lag_ms)
    assert seen == {1.0, 4.0, 9.0}


def test_errors_say_what_to_do():
    class NoPeriod(SubstepIntegrator):
        def __init__(self):
            super().__init__()
            del self.control_period_s

    with pytest.raises(ValueError, match="pass control_period_s"):
        ObservationDelay(NoPeriod(), 10.0)
    with pytest.raises(ValueError, match="ActionDelay"):
        Jitter(SubstepIntegrator(), (0.0, 12.0))
    with pytest.raises(ValueError, match="set_delayed_action"):
        ActionDelay(SubstepIntegrator(), 5.0, fractional="hook")


def test_quadrotor_action_delay_is_whole_steps_from_the_task_period():
    from sim2real.quadrotor.env import QuadrotorHoverEnv

    env = ActionDelay(QuadrotorHoverEnv(), 30.0)
    assert (env.whole_steps, env.fraction) == (3, 0.0)  # L2F's 10 ms step
    env.reset(seed=0)
    env.step(env.action_space.sample())


def test_vec_action_delay_on_the_quadrotor_applies_actions_three_steps_late():
    from sim2real.latency import VecActionDelay
    from sim2real.quadrotor.env import VecQuadrotorHover
    from sim2real.quadrotor.observation import HISTORY

    env = VecActionDelay(VecQuadrotorHover(2, seed=0), 30.0, control_period_s=0.01, history_columns=HISTORY)
    env.reset(seed=0)
    sent = [np.full((2, 4), 0.1 * (t + 1)) for t in range(5)]
    for action in sent:
        obs, _, _, _, info = env.step(action)
    # the env records what it applied in its own action history: the last applied is the 2nd one sent
    applied = env.env.critic_obs[:, HISTORY][:, -4:]
    np.testing.assert_allclose(applied, sent[1], atol=1e-6)
    # the policy's observation remembers what it sent, in-flight actions included
    for view in (obs, info["critic_obs"]):
        np.testing.assert_allclose(view[:, HISTORY][:, -20:].reshape(2, 5, 4), np.stack(sent, axis=1), atol=1e-6)
    # and so does the wrapper's actor_obs, also after set_state rebuilt the env's own from the applied actions
    env.set_state([0], position_m=[0.0, 0.0, 0.0])
    assert not np.allclose(env.env.actor_obs[0, HISTORY], env.sent_history[0])
    np.testing.assert_allclose(env.actor_obs[:, HISTORY], env.sent_history)
    np.testing.assert_allclose(env.actor_obs[:, :18], env.env.actor_obs[:, :18])
    with pytest.raises(ValueError, match="whole steps"):
        VecActionDelay(VecQuadrotorHover(1), 25.0, control_period_s=0.01)


def test_vec_action_delay_draws_each_episode_its_own_whole_step_delay():
    from sim2real.latency import VecActionDelay
    from sim2real.quadrotor.env import VecQuadrotorHover
    from sim2real.quadrotor.observation import HISTORY

    env = VecActionDelay(VecQuadrotorHover(64, seed=0), (0.0, 40.0), control_period_s=0.01, history_columns=HISTORY)
    env.reset(seed=0)
    delays = env.env_delay_steps.copy()
    assert set(delays) == {0, 1, 2, 3, 4}  # 64 draws cover every whole step from 0 to 40 ms
    sent = [np.full((64, 4), 0.1 * (t + 1)) for t in range(6)]
    for action in sent:
        env.step(action)
    # what each env applied last is the action sent `delay` steps before the last one
    applied = env.env.critic_obs[:, HISTORY][:, -4:]
    np.testing.assert_allclose(applied[:, 0], [0.1 * (6 - d) for d in delays], atol=1e-6)
    env.env.set_state(np.arange(64), position_m=[5.0, 0.0, 0.0])  # leave the box: every episode ends
    env.step(sent[0])
    assert not np.array_equal(env.env_delay_steps, delays)  # new episodes, new draws
    with pytest.raises(ValueError, match="low <= high"):
        VecActionDelay(VecQuadrotorHover(1), (30.0, 10.0), control_period_s=0.01)


def test_pick_cube_action_delay_splits_the_100_ms_period_at_30_ms():
    import sim2real  # noqa: F401  (registers the env ids)

    moved = {}
    for delay_ms in (0.0, 30.0):
        env = ActionDelay(gym.make("robot_rl/PickCube-v0"), delay_ms)
        assert (env.whole_steps, env.fractional) == (0, "hook")  # PickCubeEnv.set_delayed_action splits its substeps
        env.reset(seed=0)
        base = env.unwrapped
        ee_before = base.ee_pos_m
        env.step(np.array([1.0, 0.0, 0.0, -1.0], np.float32))
        # the target is set when the action arrives: a full step ahead of where the hand was then (it held still before)
        assert base.ee_target_m[0] - ee_before[0] == pytest.approx(base.max_step_m, abs=2e-3)
        moved[delay_ms] = base.ee_pos_m[0] - ee_before[0]
        env.close()
    assert 0.0 < moved[30.0] < moved[0.0]  # the hand moved for 70% of the period only
