"""The scripted intervener drives the real pick-cube env through the arbiter: it takes over a drifting
policy after its reaction delay, respects its budget, hands back, and its takeovers rescue episodes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import sim2real  # noqa: F401  (registers the env ids)
from robot_rl.intervention import InterventionArbiter, InterventionConfig, PickCubeTeleopAdapter
from sim2real.pick_cube.intervener import TAKEOVER_BUTTON, IntervenerConfig, ScriptedIntervener


def run_episodes(policy, config: IntervenerConfig, episodes: int, seed: int = 0):
    env = gym.make("robot_rl/PickCube-v0", max_episode_steps=40)
    intervener = ScriptedIntervener(env, config, clock_ns=lambda: clock[0])
    arbiter = InterventionArbiter(InterventionConfig(takeover_button=TAKEOVER_BUTTON, hold_s=0.0),
                                  PickCubeTeleopAdapter.for_env(env))
    clock = [0]
    log = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            arbiter.reset()
            steps = []
            while True:
                policy_action = policy(obs)
                intervener.observe(policy_action)
                out = arbiter.step(policy_action, intervener.read(), clock[0])
                steps.append(out)
                obs, _, terminated, truncated, info = env.step(out.executed_action)
                clock[0] += 100_000_000
                if terminated or truncated:
                    break
            log.append((steps, bool(info["is_success"])))
    finally:
        env.close()
    return log, intervener


def still_policy(obs):
    return np.array([0.0, 0.0, 0.0, -1.0], np.float32)  # never reaches for the cube


def test_takeover_after_patience_and_reaction_delay_rescues_episodes():
    config = IntervenerConfig(patience_steps=2, reaction_delay_steps=3, episode_budget_steps=40, max_takeover_steps=40)
    log, intervener = run_episodes(still_policy, config, episodes=3)
    for steps, success in log:
        intervened = [s.intervened for s in steps]
        # Drift noticed on the 2nd step (patience 2), 3 steps of reaction: the device drives from the 5th on.
        assert intervened[:4] == [False] * 4 and intervened[4]
        assert steps[4].takeover and steps[4].device == "scripted-expert"
        assert success  # the expert, driving through the arbiter, lifts the cube
    assert intervener.takeovers == 3


def test_budget_limits_intervention_and_hands_back():
    config = IntervenerConfig(patience_steps=1, reaction_delay_steps=0, episode_budget_steps=6, session_budget_steps=9)
    log, intervener = run_episodes(still_policy, config, episodes=2)
    first, second = ([s.intervened for s in steps] for steps, _ in log)
    assert sum(first) == 6 and sum(second) == 3  # the session budget (9) ends the second episode's early
    assert not any(success for _, success in log)  # 6 steps are not enough to pick the cube
    handbacks = [s for steps, _ in log for s in steps if s.handback]
    assert len(handbacks) == 2 and intervener.session_steps == 9


def test_agreeing_policy_is_left_alone():
    env_for_expert = {}

    def expert_policy(obs):
        return env_for_expert["expert"].act()

    from sim2real.pick_cube.expert import PickCubeExpert

    env = gym.make("robot_rl/PickCube-v0", max_episode_steps=40)
    env_for_expert["expert"] = PickCubeExpert(env)
    intervener = ScriptedIntervener(env, IntervenerConfig(patience_steps=1, reaction_delay_steps=0))
    obs, _ = env.reset(seed=3)
    for _ in range(40):
        action = expert_policy(obs)
        intervener.observe(action)
        assert not intervener.read().engaged
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    assert terminated and intervener.takeovers == 0
    env.close()


def test_hil_serl_routing_fills_real_replay_buffers_sampled_half_and_half():
    from robot_rl.intervention import DEMO, ONLINE, InterventionTransition, route_transition
    from robot_rl.replay import ReplayBuffer, sample_mixed
    from robot_rl.spaces import flatten_obs, obs_spec_from_space

    env = gym.make("robot_rl/PickCube-v0", max_episode_steps=30)
    spec = obs_spec_from_space(env.observation_space)
    stores = {ONLINE: ReplayBuffer(spec, 4, 200), DEMO: ReplayBuffer(spec, 4, 200)}
    clock = [0]
    intervener = ScriptedIntervener(env, IntervenerConfig(patience_steps=1, reaction_delay_steps=0,
                                                          max_takeover_steps=4, agree_steps=1), clock_ns=lambda: clock[0])
    arbiter = InterventionArbiter(InterventionConfig(takeover_button=TAKEOVER_BUTTON, hold_s=0.0),
                                  PickCubeTeleopAdapter.for_env(env))
    # A policy that mostly drifts: takeovers of <= 4 steps, then the policy again, several times.
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=5)
    demo_actions, demo_rows, start, steps = [], [], True, 0
    for steps in range(1, 31):
        policy_action = rng.uniform(-1, 1, 4).astype(np.float32)
        intervener.observe(policy_action)
        out = arbiter.step(policy_action, intervener.read(), clock[0])
        next_obs, reward, terminated, truncated, _ = env.step(out.executed_action)
        record = InterventionTransition(flatten_obs(spec, obs), policy_action, out.executed_action, reward, terminated,
                                        truncated, flatten_obs(spec, next_obs), out.intervened, out.device, 3, start)
        for store, t in route_transition("hil-serl", record, out):
            stores[store].add(t.obs, t.action, t.reward, t.terminated, t.truncated, t.next_obs, t.episode_start)
            if store == DEMO:
                demo_actions.append(t.action)
                demo_rows.append(len(stores[ONLINE]) - 1)  # its online twin was added just before
        obs, start, clock[0] = next_obs, False, clock[0] + 100_000_000
        if terminated or truncated:
            break
    env.close()
    assert len(stores[ONLINE]) == steps and 0 < len(stores[DEMO]) < steps and intervener.takeovers >= 2
    demo = stores[DEMO].gather(np.arange(len(stores[DEMO])))
    np.testing.assert_array_equal(demo["action"], np.stack(demo_actions))
    # Each demo transition's obs is its own state, also across the gaps between intervention segments.
    online = stores[ONLINE].gather(np.arange(steps))
    np.testing.assert_array_equal(demo["obs"]["state"], online["obs"]["state"][demo_rows])
    np.testing.assert_array_equal(demo["next_obs"]["state"], online["next_obs"]["state"][demo_rows])
    batch = sample_mixed(stores[ONLINE], stores[DEMO], 64, 0.5)
    demo_set = {tuple(a) for a in demo["action"]}
    # RLPD 50/50: the second half of the batch is all intervention steps.
    assert len(batch["action"]) == 64 and all(tuple(a) in demo_set for a in batch["action"][32:])
