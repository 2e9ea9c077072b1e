"""The TD-MPC2 update, top to bottom: TD targets -> latent rollout (consistency, reward, value losses) -> policy prior.

sample H-step sub-trajectories -> TD targets from the target Q ensemble (min of two random
members) at the encoded next observations -> roll the latent dynamics from the first encoded
observation, matching each predicted latent to the encoded next observation (consistency),
regressing rewards and Q-values by two-hot cross-entropy, later steps weighted by rho^t ->
policy prior: maximize Q (divided by a running scale of Q's 5-95 percentile range) plus a small
entropy bonus, and (not in TD-MPC2) behaviour cloning on demo samples -> Polyak target Q.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from policies.world_model.config import AgentSettings, ModelSettings
from policies.world_model.model import WorldModel


class RunningScale:
    """EMA of the 5th-95th percentile range of Q, at least 1 (TD-MPC2), to make the policy loss scale-free."""

    def __init__(self, tau: float):
        self.tau, self.value = tau, 1.0

    def update(self, q: torch.Tensor) -> float:
        low, high = torch.quantile(q.detach().float().reshape(-1), torch.tensor([0.05, 0.95]))
        self.value += self.tau * (max(float(high - low), 1.0) - self.value)
        return self.value


class WorldModelAgent:
    def __init__(self, state_dim: int, action_dim: int, model_settings: ModelSettings, settings: AgentSettings,
                 seed: int = 0):
        torch.manual_seed(seed)
        self.settings = settings
        self.model = WorldModel(state_dim, action_dim, model_settings).eval()
        self.generator = torch.Generator().manual_seed(seed + 1)
        m = self.model
        self.model_opt = torch.optim.Adam([
            {"params": m.encoder.parameters(), "lr": settings.lr * settings.enc_lr_scale},
            {"params": [*m.dynamics.parameters(), *m.reward.parameters(), *m.q.parameters()]},
        ], lr=settings.lr)
        self.pi_opt = torch.optim.Adam(m.pi.parameters(), lr=settings.lr, eps=1e-5)  # TD-MPC2
        self.scale = RunningScale(settings.tau)
        self.updates = 0

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """``batch``: state [H+1,B,S], action [H,B,A], reward [H,B], terminated [H,B], demo [B] (1.0 = demo)."""
        cfg, model, twohot = self.settings, self.model, self.model.twohot
        state, action, reward, terminated = batch["state"], batch["action"], batch["reward"], batch["terminated"]
        horizon = action.shape[0]
        rho = cfg.rho ** torch.arange(horizon + 1, dtype=torch.float32)
        model.train()

        # TD targets at the encoded next observations; a terminal transition does not bootstrap
        with torch.no_grad():
            next_z = model.encode(state[1:])
            next_action, _, _ = model.pi_sample(next_z, self.generator)
            next_q = model.q_value(next_z, next_action, "min", target=True, generator=self.generator)
            td_target = reward + cfg.discount * (1.0 - terminated) * next_q

        # latent rollout from the first observation only
        z = model.encode(state[0])
        zs, consistency = [z], 0.0
        for t in range(horizon):
            z = model.next(z, action[t])
            consistency = consistency + rho[t] * F.mse_loss(z, next_z[t])
            zs.append(z)
        rollout = torch.stack(zs[:-1])  # [H, B, L]
        q_logits = model.q_logits(rollout, action)  # [E, H, B, bins]
        reward_loss = (twohot.cross_entropy(model.reward_logits(rollout, action), reward).mean(-1) * rho[:-1]).sum()
        value_loss = (twohot.cross_entropy(q_logits, td_target.expand_as(q_logits[..., 0])).mean(-1) * rho[:-1]).sum()
        consistency, reward_loss = consistency / horizon, reward_loss / horizon
        value_loss = value_loss / (horizon * model.cfg.num_q)
        total = cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss + cfg.value_coef * value_loss
        self.model_opt.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for group in self.model_opt.param_groups for p in group["params"]], cfg.grad_clip_norm)
        self.model_opt.step()

        # policy prior on the (detached) latents
        latents = torch.stack(zs).detach()  # [H+1, B, L]
        pi_action, log_prob, mean_action = model.pi_sample(latents, self.generator)
        model.q.requires_grad_(False)  # the prior's loss needs dQ/da only
        q = model.q_value(latents, pi_action, "avg", generator=self.generator)
        model.q.requires_grad_(True)
        scale = self.scale.update(q[0])
        pi_loss = ((cfg.entropy_coef * log_prob - q / scale).mean(-1) * rho).mean()
        bc_loss = torch.zeros(())
        demo = batch.get("demo")
        if cfg.demo_bc_coef > 0 and demo is not None and demo.sum() > 0:
            squared = (mean_action[:-1] - action).pow(2).sum(-1)  # [H, B]
            bc_loss = (squared * demo).sum() / (demo.sum() * horizon)
        self.pi_opt.zero_grad(set_to_none=True)
        (pi_loss + cfg.demo_bc_coef * bc_loss).backward()
        torch.nn.utils.clip_grad_norm_(model.pi.parameters(), cfg.grad_clip_norm)
        self.pi_opt.step()

        with torch.no_grad():  # Polyak target Q, one fused op
            torch._foreach_lerp_(list(model.target_q.parameters()), list(model.q.parameters()), cfg.tau)
        model.eval()
        self.updates += 1
        figures = {"consistency_loss": consistency, "reward_loss": reward_loss, "value_loss": value_loss,
                   "pi_loss": pi_loss, "bc_loss": bc_loss, "total_loss": total, "grad_norm": grad_norm,
                   "q_mean": q.mean(), "entropy": -log_prob.mean(), "td_target_mean": td_target.mean()}
        return {**{k: v.item() for k, v in figures.items()}, "q_scale": scale}

    # ----- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "model_opt": self.model_opt.state_dict(),
                "pi_opt": self.pi_opt.state_dict(), "scale": torch.tensor(self.scale.value), "updates": self.updates,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.model_opt.load_state_dict(state["model_opt"])
        self.pi_opt.load_state_dict(state["pi_opt"])
        self.scale.value = float(state["scale"])
        self.updates = int(state["updates"])
        self.generator.set_state(state["generator"])


def batch_to_torch(batch: dict) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in batch.items()}
