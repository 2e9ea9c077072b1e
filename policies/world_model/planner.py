"""MPPI in the world model's latent space (TD-MPC2), with a time budget that protects the control deadline.

One decision: encode the observation, roll out ``num_pi_trajs`` policy-prior sequences, then
iterate: sample Gaussian sequences around the mean (warm-started from the previous decision's plan
shifted by one step; with ``center_on_prior``, around the prior's own plan, the shifted plan being one
candidate), score every sequence by its predicted discounted reward plus the terminal Q,
refit mean/std to the softmax-weighted elites. All sequences are scored in one batch per step.

The time budget: the planner times each of its own iterations and starts the next one only if
``elapsed + budget_margin * (recent iteration time)`` still fits ``time_budget_ms``. A decision that
cannot fit even one iteration acts with the policy prior instead. Every decision says which path it
took (``planned``: all iterations, ``truncated``: fewer, ``prior``: the fallback) and how long it took.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from policies.world_model.config import PlannerSettings
from policies.world_model.model import WorldModel

PATHS = ("planned", "truncated", "prior")
PROBE_AFTER = 200  # consecutive fallbacks before one decision re-measures an iteration (20 s at 10 Hz)


@dataclass(frozen=True)
class Decision:
    action: np.ndarray  # normalized, in [-1, 1]
    path: str  # one of PATHS
    iterations: int  # MPPI iterations run
    elapsed_ms: float  # from the observation to the action


class MPPIPlanner:
    def __init__(self, model: WorldModel, settings: PlannerSettings, discount: float, seed: int = 0):
        self.model, self.settings, self.discount = model, settings, discount
        self.generator = torch.Generator().manual_seed(seed)
        self.action_dim = model.action_dim
        self.prev_mean: torch.Tensor | None = None  # the previous decision's plan (the warm start)
        self.last_mean: torch.Tensor | None = None
        self.iteration_s: deque[float] = deque(maxlen=16)  # recent MPPI iteration times
        self.prior_rollout_s: deque[float] = deque(maxlen=16)
        self.fallbacks_in_row = 0

    def reset(self) -> None:
        """A new episode: forget the previous plan."""
        self.prev_mean = None

    # ----- time budget --------------------------------------------------------------------
    def _estimate_s(self, times: deque) -> float:
        return float(np.median(times)) if times else 0.0

    def _fits(self, elapsed_s: float, next_s: float) -> bool:
        budget_ms = self.settings.time_budget_ms
        return budget_ms is None or (elapsed_s + self.settings.budget_margin * next_s) * 1e3 <= budget_ms

    @torch.no_grad()
    def calibrate(self, state: np.ndarray, decisions: int = 3) -> None:
        """Time a few unbudgeted decisions so that the budget check has measurements before the first real one."""
        budget = self.settings.time_budget_ms
        self.settings = self.settings.model_copy(update={"time_budget_ms": None})
        try:
            for _ in range(decisions):
                self.plan(state, explore=False)
        finally:
            self.settings = self.settings.model_copy(update={"time_budget_ms": budget})
            self.reset()

    # ----- planning -----------------------------------------------------------------------
    def initial_mean(self) -> torch.Tensor:
        """Where the next decision's search starts: the previous plan one step on (last step 0), else zeros."""
        mean = torch.zeros(self.settings.horizon, self.action_dim)
        if self.prev_mean is not None:
            mean[:-1] = self.prev_mean[1:]
        return mean

    def _value(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Discounted predicted reward over the horizon plus discounted terminal Q; z [N, L], actions [H, N, A]."""
        model, ret, discount = self.model, torch.zeros(z.shape[0]), 1.0
        for t in range(actions.shape[0]):
            ret = ret + discount * model.twohot.decode(model.reward_logits(z, actions[t]))
            z = model.next(z, actions[t])
            discount *= self.discount
        action, _, _ = model.pi_sample(z, self.generator)
        return ret + discount * model.q_value(z, action, "avg", generator=self.generator)

    @torch.no_grad()
    def plan(self, state: np.ndarray, explore: bool = False) -> Decision:
        """One observation's ``state`` [S] -> a Decision; ``explore`` adds the plan's std as noise (training)."""
        if self.settings.time_budget_ms is not None and not self.iteration_s:
            self.calibrate(state)  # once: the budget check needs measured iteration times
        start = time.perf_counter()
        cfg, model = self.settings, self.model
        horizon, dim = cfg.horizon, self.action_dim
        z = model.encode(torch.as_tensor(state, dtype=torch.float32).reshape(1, -1))

        first = self._estimate_s(self.prior_rollout_s) + self._estimate_s(self.iteration_s)
        if not self._fits(time.perf_counter() - start, first):
            if not self._probe():
                return self._prior_decision(z, explore, start)
            self.iteration_s.clear()  # re-measure from this decision on: the old times are stale
            self.prior_rollout_s.clear()
        self.fallbacks_in_row = 0

        # policy-prior sequences
        rollout_start = time.perf_counter()
        pi_actions = torch.empty(horizon, cfg.num_pi_trajs, dim)
        if cfg.num_pi_trajs:
            zp = z.expand(cfg.num_pi_trajs, -1)
            for t in range(horizon):
                pi_actions[t], _, _ = model.pi_sample(zp, self.generator)
                if t < horizon - 1:
                    zp = model.next(zp, pi_actions[t])
        self.prior_rollout_s.append(time.perf_counter() - rollout_start)

        total = cfg.num_samples + cfg.num_pi_trajs
        z_all = z.expand(total, -1)
        mean, warm_start = self.initial_mean(), None
        if cfg.center_on_prior:
            prior_plan = self._prior_rollout(z)
            if self.prev_mean is not None:  # the shifted plan competes as a candidate; its empty last step is the prior's
                warm_start = torch.cat([mean[:-1], prior_plan[-1:]])
            mean = prior_plan
        std = torch.full((horizon, dim), cfg.max_std)
        actions = torch.empty(horizon, total, dim)
        actions[:, : cfg.num_pi_trajs] = pi_actions
        iterations = 0
        elite_actions = elite_scores = None
        while iterations < cfg.iterations:
            if iterations > 0 and not self._fits(time.perf_counter() - start, self._estimate_s(self.iteration_s)):
                break
            iteration_start = time.perf_counter()
            noise = torch.randn(horizon, cfg.num_samples, dim, generator=self.generator)
            actions[:, cfg.num_pi_trajs:] = (mean.unsqueeze(1) + std.unsqueeze(1) * noise).clamp(-1, 1)
            if warm_start is not None:
                actions[:, cfg.num_pi_trajs] = warm_start
            value = self._value(z_all, actions).nan_to_num(0.0)
            elite_values, elite_idx = torch.topk(value, cfg.num_elites)
            elite_actions = actions[:, elite_idx]
            elite_scores = torch.exp(cfg.temperature * (elite_values - elite_values.max()))
            elite_scores = elite_scores / elite_scores.sum()
            weights = elite_scores.view(1, -1, 1)
            mean = (weights * elite_actions).sum(1)
            std = ((weights * (elite_actions - mean.unsqueeze(1)).pow(2)).sum(1)).sqrt().clamp(cfg.min_std, cfg.max_std)
            iterations += 1
            self.iteration_s.append(time.perf_counter() - iteration_start)

        if explore:  # TD-MPC2: the first action of one elite drawn by score, plus the plan's own spread
            choice = torch.multinomial(elite_scores, 1, generator=self.generator)
            action = (elite_actions[0, choice[0]] + std[0] * torch.randn(dim, generator=self.generator)).clamp(-1, 1)
        else:
            # not TD-MPC2: the plan's mean, as SAC evaluates its mean action; with 0/1 rewards the values lie in
            # [0, 1] and the elites' scores are nearly equal, so a drawn elite is the prior plus noise
            # (measured on pick-cube after 1000 env steps: drawn elite 0.40 success, its prior alone 1.00)
            action = mean[0]
        self.last_mean = mean
        self.prev_mean = mean
        path = "planned" if iterations == cfg.iterations else "truncated"
        return Decision(action.numpy().copy(), path, iterations, (time.perf_counter() - start) * 1e3)

    def _prior_rollout(self, z: torch.Tensor) -> torch.Tensor:
        """The prior's deterministic plan [H, A] from latent ``z`` [1, L], through the latent dynamics."""
        plan = torch.empty(self.settings.horizon, self.action_dim)
        for t in range(self.settings.horizon):
            action = self.model.pi_mean(z)
            plan[t] = action[0]
            if t < self.settings.horizon - 1:
                z = self.model.next(z, action)
        return plan

    def _probe(self) -> bool:
        """Every PROBE_AFTER-th fallback in a row plans one iteration anyway, to re-measure.

        Without it, iteration times measured while the machine was busy would keep the planner on the
        prior after it is quiet again; one late decision in PROBE_AFTER stays out of the p99.
        """
        return self.fallbacks_in_row >= PROBE_AFTER

    def _prior_decision(self, z: torch.Tensor, explore: bool, start: float) -> Decision:
        self.fallbacks_in_row += 1
        sample, _, mean_action = self.model.pi_sample(z, self.generator)
        action = sample if explore else mean_action
        if self.prev_mean is not None:  # keep the warm start aligned with time
            self.prev_mean = torch.cat([self.prev_mean[1:], self.prev_mean[-1:]])
        return Decision(action[0].numpy().copy(), "prior", 0, (time.perf_counter() - start) * 1e3)
