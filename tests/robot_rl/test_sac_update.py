"""RLPD-style SAC pieces: TD targets (terminated vs truncated), ensemble shapes, DrQ shift."""

import numpy as np
import pytest
import torch

from policies.networks import CriticEnsemble
from robot_rl.config import LearnerConfig
from robot_rl.sac import SACAgent, random_shift
from robot_rl.spaces import ObsSpec

torch.set_num_threads(1)


def _batch(size, terminated):
    return {
        "obs": {"state": torch.randn(size, 3)}, "next_obs": {"state": torch.randn(size, 3)},
        "action": torch.rand(size, 1) * 2 - 1, "reward": torch.ones(size), "terminated": torch.full((size,), terminated),
    }


def test_ensemble_is_one_batched_module_with_member_outputs():
    critic = CriticEnsemble(feature_dim=5, action_dim=2, hidden=[32, 32], members=10, layer_norm=True)
    q = critic(torch.randn(7, 5), torch.randn(7, 2))
    assert q.shape == (10, 7)
    assert critic.linears[0].weight.shape == (10, 7, 32)  # stacked weights, one matmul
    assert not torch.allclose(q[0], q[1])  # members are independently initialised
    subset = critic(torch.randn(7, 5), torch.randn(7, 2), members=torch.tensor([3, 8]))
    assert subset.shape == (2, 7)


def test_terminated_does_not_bootstrap_but_truncated_does():
    cfg = LearnerConfig(hidden_dims=[16], num_critics=4, discount=0.9, init_temperature=1e-6)
    agent = SACAgent(ObsSpec(3), 1, cfg, seed=0)
    with torch.no_grad():  # make every target critic output exactly 5.0
        agent.target_critic.head.weight.zero_()
        agent.target_critic.head.bias.fill_(5.0)
        agent.critic.head.weight.zero_()
        agent.critic.head.bias.zero_()
    terminal = _batch(8, 1.0)
    timeout = _batch(8, 0.0)  # a truncated step: the episode ended but the state is not terminal
    loss_terminal = agent.update(terminal, update_actor=False)["critic_loss"]
    with torch.no_grad():
        agent.critic.head.weight.zero_()
        agent.critic.head.bias.zero_()
        agent.target_critic.head.weight.zero_()
        agent.target_critic.head.bias.fill_(5.0)
    loss_timeout = agent.update(timeout, update_actor=False)["critic_loss"]
    # Q = 0 everywhere, so the loss is target^2: 1 when terminal, (1 + 0.9*5)^2 when bootstrapping
    assert loss_terminal == pytest.approx(1.0, rel=1e-4)
    assert loss_timeout == pytest.approx((1.0 + 0.9 * 5.0) ** 2, rel=1e-3)


def test_update_changes_weights_and_logs_quantities():
    cfg = LearnerConfig(hidden_dims=[32, 32], num_critics=10)
    agent = SACAgent(ObsSpec(3), 1, cfg, seed=1)
    before = agent.actor_state_dict()
    metrics = agent.update(_batch(64, 0.0))
    after = agent.actor_state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    for key in ("critic_loss", "q_mean", "q_std_ensemble", "actor_loss", "entropy", "temperature"):
        assert np.isfinite(metrics[key])
    assert agent.target_entropy == pytest.approx(-0.5)  # RLPD: -|A|/2


def test_checkpoint_round_trip_restores_everything(tmp_path):
    cfg = LearnerConfig(hidden_dims=[16], num_critics=3)
    agent = SACAgent(ObsSpec(3), 1, cfg, seed=2)
    for _ in range(3):
        agent.update(_batch(16, 0.0))
    torch.save(agent.state_dict(), tmp_path / "ckpt.pt")
    clone = SACAgent(ObsSpec(3), 1, cfg, seed=99)
    clone.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True))
    batch = _batch(16, 0.0)
    torch.manual_seed(0)
    a = agent.update(batch)
    torch.manual_seed(0)
    b = clone.update(batch)
    assert a == b and clone.updates == agent.updates == 4


def test_random_shift_moves_content_within_pad():
    image = torch.zeros(64, 16, 16, 3, dtype=torch.uint8)
    image[:, 8, 8] = 255
    shifted = random_shift(image, pad=4, generator=torch.Generator().manual_seed(0))
    assert shifted.shape == image.shape and shifted.dtype == torch.uint8
    positions = {tuple(torch.nonzero(s[..., 0])[0].tolist()) for s in shifted}
    assert len(positions) > 5  # different samples get different shifts
    assert all(abs(r - 8) <= 4 and abs(c - 8) <= 4 for r, c in positions)


def test_pixel_agent_updates_its_encoder():
    spec = ObsSpec(state_dim=2, image_shapes={"front": (32, 32, 3)})
    cfg = LearnerConfig(hidden_dims=[32], num_critics=2, image_encoder_channels=[8, 8],
                        image_encoder_strides=[2, 1], image_latent_dim=8)
    agent = SACAgent(spec, 2, cfg, seed=0)
    batch = {
        "obs": {"state": torch.randn(8, 2), "front": torch.randint(0, 255, (8, 32, 32, 3), dtype=torch.uint8)},
        "next_obs": {"state": torch.randn(8, 2), "front": torch.randint(0, 255, (8, 32, 32, 3), dtype=torch.uint8)},
        "action": torch.rand(8, 2) * 2 - 1, "reward": torch.rand(8), "terminated": torch.zeros(8),
    }
    before = {k: v.clone() for k, v in agent.encoder.state_dict().items()}
    agent.update(batch)
    assert any(not torch.equal(before[k], v) for k, v in agent.encoder.state_dict().items())
