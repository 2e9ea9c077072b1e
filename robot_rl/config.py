"""Typed session configuration: one YAML file per session, validated before anything starts.

Algorithm settings (``learner``) are kept apart from what the session runs on (``env``) and
how long it runs (``train``). Every default names where it comes from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from robot_rl.intervention import InterventionSessionConfig
from robot_rl.reward.config import RewardConfig
from robot_rl.residual import ResidualConfig


class ConfigError(ValueError):
    """A session file that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LearnerConfig(_Strict):
    """RLPD-style SAC. Defaults follow RLPD (Ball et al. 2023) and SERL (Luo et al. 2024)."""

    hidden_dims: list[int] = Field(default=[256, 256], description="MLP widths (RLPD: 256x2)")
    num_critics: int = Field(default=10, ge=1, description="critic ensemble size (RLPD: 10)")
    critic_subsample: int = Field(default=2, ge=1, description="target = min over this many random critics (RLPD: 2)")
    layer_norm: bool = Field(default=True, description="LayerNorm in critic and actor MLPs (RLPD)")
    batch_size: int = Field(default=256, ge=1, description="online + demo samples per update (SERL: 256)")
    demo_ratio: float = Field(default=0.5, ge=0.0, le=1.0, description="share of each batch drawn from demos (RLPD: 0.5)")
    utd: int = Field(default=4, ge=1, description="gradient updates per env step (SERL: 4-20)")
    discount: float = Field(default=0.97, gt=0.0, le=1.0, description="(SERL: 0.96-0.98)")
    tau: float = Field(default=0.005, gt=0.0, le=1.0, description="target network Polyak rate (SAC)")
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temp_lr: float = 3e-4
    init_temperature: float = Field(default=1.0, gt=0.0, description="(RLPD: 1.0)")
    target_entropy_scale: float = Field(default=0.5, description="target entropy = -scale*|A| (RLPD: |A|/2)")
    backup_entropy: bool = Field(default=False, description="entropy term in the TD target (RLPD: off)")
    actor_update_every: int = Field(default=1, ge=1, description="actor/temperature update every k critic updates")
    warmup_steps: int = Field(default=1000, ge=0, description="env steps of random actions before learning starts")
    image_encoder_channels: list[int] = Field(default=[32, 32, 32, 32], description="small CNN (DrQ-style)")
    image_encoder_strides: list[int] = Field(default=[2, 1, 1, 1], description="conv strides, one per channel entry (DrQ)")
    image_latent_dim: int = Field(default=50, ge=1, description="encoder output per camera (DrQ: 50)")
    drq_pad: int = Field(default=4, ge=0, description="DrQ random-shift padding in pixels (DrQ: 4)")
    replay_capacity: int = Field(default=200_000, ge=1)
    weight_publish_every: int = Field(default=50, ge=1, description="learner updates between weight publications")
    torch_threads: int = Field(default=1, ge=1, description="learner torch threads (small machines: never spin on all cores)")
    zero_init_actor_mean: bool = Field(default=False, description="actor mean output layer starts at 0 (residual RL)")
    # set from the session's `residual:` section (SessionConfig fills them in): executed = clip(base + alpha_t*tanh(r))
    residual_alpha: float = Field(default=0.0, ge=0.0, description="0: plain SAC; else the residual scale (from residual.alpha)")
    residual_ramp_steps: int = Field(default=0, ge=0, description="env steps of the alpha_t ramp (from residual.ramp_steps)")

    @model_validator(mode="after")
    def _check(self) -> "LearnerConfig":
        if len(self.image_encoder_strides) != len(self.image_encoder_channels):
            raise ValueError("image_encoder_strides needs one entry per image_encoder_channels entry")
        if self.critic_subsample > self.num_critics:
            raise ValueError(f"critic_subsample ({self.critic_subsample}) exceeds num_critics ({self.num_critics})")
        return self


class DemoConfig(_Strict):
    source: Literal["none", "expert"] = Field(default="none", description="'expert' records episodes with the env's scripted expert")
    episodes: int = Field(default=20, ge=0)
    only_successful: bool = Field(default=True, description="keep only episodes the expert completed")
    action_noise: float = Field(default=0.1, ge=0.0, description="Gaussian noise on expert actions, for coverage")


class TrainConfig(_Strict):
    max_env_steps: int = Field(default=20_000, ge=1)
    max_minutes: float = Field(default=15.0, gt=0)
    eval_every_env_steps: int = Field(default=2_000, ge=1)
    eval_episodes: int = Field(default=10, ge=1, description="episodes per periodic evaluation")
    final_eval_episodes: int = Field(default=50, ge=1, description="deterministic episodes for the final report")
    stop_at_success_rate: float | None = Field(default=None, description="end early once a periodic eval reaches this")
    stop_at_eval_return: float | None = Field(default=None, description="end early once a periodic eval reaches this")
    stop_after_evals_at_bar: int = Field(default=2, ge=1, description="consecutive periodic evals that must reach the bar")
    checkpoint_every_updates: int = Field(default=5_000, ge=1)
    max_actor_lead_steps: int = Field(
        default=20, ge=1,
        description="simulation only: the actor waits when it is this many steps ahead of the learner's UTD",
    )
    actor_torch_threads: int = Field(default=1, ge=1)


class SessionConfig(_Strict):
    name: str = Field(description="run name; the run directory defaults to runs/<name>")
    env: str = Field(description="registered gymnasium id, e.g. robot_rl/PickCube-v0 or Pendulum-v1")
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    control_hz: float | None = Field(default=None, description="policy rate for export/deploy; read from the env when unset")
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    demos: DemoConfig = Field(default_factory=DemoConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    intervention: InterventionSessionConfig | None = Field(default=None, description="human-in-the-loop; None: off")
    reward: RewardConfig | None = Field(default=None, description="reward source (robot_rl.reward.config); None: the task's")
    residual: ResidualConfig | None = Field(default=None, description="residual RL on a base policy (robot_rl.residual)")

    @model_validator(mode="after")
    def _residual_into_learner(self) -> "SessionConfig":
        # the learner and actors build their networks from `learner` alone: the residual section is copied there
        if self.residual is not None:
            self.learner.residual_alpha = self.residual.alpha
            self.learner.residual_ramp_steps = self.residual.ramp_steps
            self.learner.zero_init_actor_mean = True
        elif self.learner.residual_alpha:
            raise ValueError("learner.residual_alpha is set by the residual: section; add one (base, alpha) instead")
        if self.learner.warmup_steps + self.train.max_actor_lead_steps < self.learner.batch_size:
            # the learner waits for a full batch, the actor for the learner's updates: both would wait forever
            raise ValueError(f"learner.warmup_steps ({self.learner.warmup_steps}) + train.max_actor_lead_steps "
                             f"({self.train.max_actor_lead_steps}) must reach learner.batch_size "
                             f"({self.learner.batch_size}) so the first batch can be collected (a residual session "
                             "uses warmup_steps 0: raise max_actor_lead_steps)")
        return self


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = []
    for item in err.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{field}'")
        elif item["type"] == "missing":
            lines.append(f"{source}: missing required key '{field}'")
        else:
            lines.append(f"{source}: field '{field}': {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def session_from_dict(data: Any, source: str = "<config>") -> SessionConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {type(data).__name__}")
    try:
        return SessionConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def session_trainer(config_path: str | Path) -> str:
    """The session file's top-level ``trainer`` ("sac" when absent or unreadable: the loader reports problems)."""
    try:
        raw = yaml.safe_load(Path(config_path).read_text())
    except (OSError, yaml.YAMLError):
        return "sac"
    return str(raw.get("trainer", "sac")) if isinstance(raw, dict) else "sac"


def validate_session_file(path: str | Path, validate):
    """``validate(raw mapping)`` for an in-process trainer's session file; errors name the file and the field."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: cannot read the session file ({error}); check the path and the YAML syntax.") from None
    try:
        return validate(raw)
    except (ValidationError, ValueError) as error:
        first = error.errors()[0] if isinstance(error, ValidationError) else {"loc": (), "msg": str(error)}
        field = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise ConfigError(f"{path}: field '{field}': {first['msg']}; fix it in the session file.") from None


def load_session(path: str | Path) -> SessionConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such session file (the shipped ones are in launch/)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return session_from_dict(data, str(path))


def dump_session(config: SessionConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
