"""All knobs of the world-model agent in one place: model sizes, the update, the MPPI planner.

Defaults are TD-MPC2's (Hansen, Su, Wang 2024, ``tdmpc2/config.yaml``) unless a comment says why
they differ; ``presets.py`` picks sizes for a 2-core CPU and for a GPU.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSettings(_Strict):
    latent_dim: int = Field(512, ge=8, description="(TD-MPC2 5M: 512)")
    mlp_dim: int = Field(512, ge=8, description="hidden width of dynamics/reward/Q/policy MLPs (TD-MPC2: 512)")
    enc_dim: int = Field(256, ge=8, description="encoder hidden width (TD-MPC2: 256)")
    num_enc_layers: int = Field(2, ge=1, description="(TD-MPC2: 2)")
    num_q: int = Field(5, ge=2, description="Q-ensemble size (TD-MPC2: 5)")
    simnorm_dim: int = Field(8, ge=2, description="SimNorm group size; latent_dim must be a multiple (TD-MPC2: 8)")
    num_bins: int = Field(101, ge=3, description="two-hot bins for rewards and values (TD-MPC2: 101)")
    vmin: float = Field(-10.0, description="lowest bin, symlog space (TD-MPC2)")
    vmax: float = Field(10.0, description="highest bin, symlog space (TD-MPC2)")
    q_dropout: float = Field(0.01, ge=0.0, lt=1.0, description="dropout in the Q heads' first layer (TD-MPC2)")
    log_std_min: float = -10.0  # TD-MPC2
    log_std_max: float = 2.0  # TD-MPC2


class AgentSettings(_Strict):
    batch_size: int = Field(256, ge=1, description="sub-trajectories per update (TD-MPC2: 256)")
    horizon: int = Field(3, ge=1, description="model rollout length in the update and the planner (TD-MPC2: 3)")
    lr: float = Field(3e-4, gt=0, description="(TD-MPC2)")
    enc_lr_scale: float = Field(0.3, gt=0, description="encoder learning rate multiplier (TD-MPC2)")
    grad_clip_norm: float = Field(20.0, gt=0, description="(TD-MPC2)")
    rho: float = Field(0.5, gt=0, le=1, description="temporal weight of later rollout steps in the losses (TD-MPC2)")
    # the SAC session's discount for this 50-step sparse task; TD-MPC2's episode-length heuristic gives 0.95
    discount: float = Field(0.97, gt=0, lt=1)
    consistency_coef: float = Field(20.0, ge=0, description="(TD-MPC2)")
    reward_coef: float = Field(0.1, ge=0, description="(TD-MPC2)")
    value_coef: float = Field(0.1, ge=0, description="(TD-MPC2)")
    entropy_coef: float = Field(1e-4, ge=0, description="policy-prior entropy bonus (TD-MPC2)")
    tau: float = Field(0.01, gt=0, le=1, description="target-Q Polyak rate (TD-MPC2)")
    # not in TD-MPC2: a behaviour-cloning term on demo samples for the policy prior (MoDem, Hansen et al. 2023,
    # pretrains the prior by BC); 0 disables it
    demo_bc_coef: float = Field(1.0, ge=0)


class PlannerSettings(_Strict):
    horizon: int = Field(3, ge=1, description="(TD-MPC2: 3)")
    num_samples: int = Field(512, ge=2, description="Gaussian action sequences per iteration (TD-MPC2: 512)")
    num_pi_trajs: int = Field(24, ge=0, description="policy-prior sequences per decision (TD-MPC2: 24)")
    num_elites: int = Field(64, ge=1, description="(TD-MPC2: 64)")
    iterations: int = Field(6, ge=1, description="MPPI iterations when time allows (TD-MPC2: 6)")
    temperature: float = Field(0.5, gt=0, description="softmax temperature over elite values (TD-MPC2)")
    min_std: float = Field(0.05, gt=0, description="(TD-MPC2)")
    max_std: float = Field(2.0, gt=0, description="(TD-MPC2)")
    # not in TD-MPC2 (MoDem-V2's policy centering, Lancaster et al. 2023): every decision searches around the prior's
    # deterministic rollout from the current state; the previous plan, shifted, is scored as one candidate instead of
    # being the search's centre, since a centre refit to the model's errors drifts further off the data each step
    # (measured on pick-cube after 1000 env steps, 100 episodes, max_std 0.2: 0.75 success warm-started, 0.90 centred)
    center_on_prior: bool = False
    # not in TD-MPC2: the decision must meet the control deadline; None plans all iterations whatever they cost
    time_budget_ms: float | None = Field(None, gt=0)
    # the next iteration runs only if elapsed + margin * (slowest recent iteration) still fits the budget
    budget_margin: float = Field(1.5, ge=1.0)
