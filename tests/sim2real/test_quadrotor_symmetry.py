"""The X frame's mirror symmetries: the simulator is equivariant under them, the group-averaged policy exactly so."""

import numpy as np
import pytest
import torch

from policies.symmetric import GroupAveragedPolicy
from robot_rl.vectorized.td3 import DeterministicActor
from sim2real.quadrotor import VecQuadrotorHover
from sim2real.quadrotor import observation as ob
from sim2real.quadrotor.symmetry import GROUP, actor_obs_map, group_maps, map_state
from sim2real.quadrotor.task import HoverTaskConfig


def _relative_state(env):
    state = env.state
    state["position_m"] = state["position_m"] - state["target_position_m"]
    return state


@pytest.mark.parametrize("element", sorted(GROUP))
def test_simulator_is_equivariant_trajectory_by_trajectory(element):
    # noise off (its draws are not mirrored), disturbances on and mirrored with the state
    task = HoverTaskConfig(disturbance_force_std_n=0.0, disturbance_torque_std_nm=0.0).without_noise()
    original = VecQuadrotorHover(6, task, seed=3, autoreset=False)
    mirrored = VecQuadrotorHover(6, task, seed=3, autoreset=False)
    original.reset(seed=3)
    mirrored.reset(seed=3)
    rng = np.random.default_rng(0)
    original.set_state(None, disturbance_force_n=rng.normal(0, 0.01, (6, 3)), disturbance_torque_nm=rng.normal(0, 1e-5, (6, 3)),
                       rpm=rng.uniform(8000, 18000, (6, 4)))
    image = map_state(element, _relative_state(original))
    image["position_m"] = image["position_m"] + mirrored.state["target_position_m"]
    mirrored.set_state(None, **image)
    index, sign = actor_obs_map(element)
    permutation = list(GROUP[element][1])
    for _ in range(150):  # 1.5 s of random rotor commands, enough to tumble: any sign error grows
        action = rng.uniform(-0.3, 0.9, (6, 4))
        obs, reward, terminated, _, _ = original.step(action)
        obs_m, reward_m, terminated_m, _, _ = mirrored.step(action[:, permutation])
        np.testing.assert_allclose(obs_m, obs[:, index] * sign, atol=1e-5)
        np.testing.assert_allclose(reward_m, reward, rtol=1e-6, atol=1e-6)
        assert np.array_equal(terminated_m, terminated)
    if element != "identity":  # the check above is not vacuous: the mirror image differs from the original
        assert np.abs(obs[:, index] * sign - obs).max() > 0.1


def _random_actor(seed=0):
    torch.manual_seed(seed)
    actor = DeterministicActor(ob.ACTOR_OBS_DIM, 4, (64, 64))
    for parameter in actor.parameters():
        torch.nn.init.normal_(parameter, std=0.2)
    return actor


def test_group_average_is_exactly_equivariant_and_the_plain_actor_is_not():
    actor = _random_actor()
    policy = GroupAveragedPolicy(actor, *group_maps())
    obs = torch.randn(32, ob.ACTOR_OBS_DIM)
    for element, (_, permutation) in GROUP.items():
        index, sign = (torch.as_tensor(part) for part in actor_obs_map(element))
        mapped = obs[:, index] * sign
        torch.testing.assert_close(policy(mapped), policy(obs)[:, list(permutation)], atol=1e-6, rtol=0)
        if element != "identity":
            assert (actor(mapped) - actor(obs)[:, list(permutation)]).abs().max() > 1e-2
    # an equivariant actor is its own average
    torch.testing.assert_close(GroupAveragedPolicy(policy, *group_maps())(obs), policy(obs), atol=1e-6, rtol=0)


def test_folded_mlp_computes_the_group_average():
    policy = GroupAveragedPolicy(_random_actor(1), *group_maps())
    folded = policy.folded()
    assert all(isinstance(layer, (torch.nn.Linear, torch.nn.ReLU, torch.nn.Tanh)) for layer in folded)
    obs = torch.randn(64, ob.ACTOR_OBS_DIM)
    torch.testing.assert_close(folded(obs), policy(obs), atol=1e-5, rtol=0)


def test_bad_group_descriptions_are_refused():
    index, sign, actions = group_maps()
    broken = index.copy()
    broken[1, 0] = broken[1, 1]  # not a permutation any more
    with pytest.raises(ValueError, match="permutation"):
        GroupAveragedPolicy(_random_actor(), broken, sign, actions)
    with pytest.raises(ValueError, match="same number"):
        GroupAveragedPolicy(_random_actor(), index, sign[:2], actions)
    convolutional = GroupAveragedPolicy(_random_actor(), index, sign, actions)
    convolutional.actor.trunk[1] = torch.nn.Dropout()
    with pytest.raises(TypeError, match="Linear layers"):
        convolutional.folded()
