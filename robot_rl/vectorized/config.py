"""Typed session file for the in-process vectorized trainer (``trainer: vectorized``).

Defaults follow "Learning to Fly in Seconds" (L2F) where it applies; what differs (many parallel
envs, fewer and larger updates) is there because torch on 2 CPU cores cannot do 300k updates in
a minute, and says so next to the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from robot_rl.config import validate_session_file


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TD3Settings(_Strict):
    hidden_dims: list[int] = [64, 64]  # L2F: 146 -> 64 -> 64 -> 4
    discount: float = Field(0.99, gt=0, lt=1)  # L2F
    tau: float = Field(0.005, gt=0, le=1)  # Fujimoto et al.
    actor_lr: float = Field(1e-3, gt=0)
    critic_lr: float = Field(1e-3, gt=0)
    policy_delay: int = Field(2, ge=1)  # Fujimoto et al.
    target_noise_std: float = Field(0.2, ge=0)
    target_noise_clip: float = Field(0.5, ge=0)
    # L2F uses FAST_TANH; ReLU measured better here (mean return 458 vs 147 after 200k env steps) and cheaper
    activation: Literal["tanh", "relu"] = "relu"
    start_at_hover: bool = True  # actor output bias starts at the hover command, not mid-range thrust
    critic_layer_norm: bool = False  # LayerNorm in the critic's hidden layers (RLPD, Ball et al. 2023)
    critic_sees_action_history: bool = False  # the critic gets rotor speeds instead (Markov without it)
    # evaluate and deploy the actor averaged over the frame's mirror symmetries (sim2real.quadrotor.symmetry);
    # training is unchanged. It removes each snapshot's sideways hover offset (seeds 0-2, see the launch file)
    symmetrize_policy: bool = False


class VectorTrainSettings(_Strict):
    num_envs: int = Field(64, ge=1)  # L2F steps one env per update; parallel envs make data cheap here
    max_env_steps: int = Field(300_000, ge=1)  # L2F
    max_seconds: float = Field(120.0, gt=0)
    warmup_env_steps: int = Field(10_000, ge=0)  # random actions before the first update
    batch_size: int = Field(256, ge=1)  # L2F
    updates_per_iteration: int = Field(1, ge=1)  # one vector step of num_envs env steps, then this many updates
    exploration_noise_std: float = Field(0.1, ge=0)  # L2F
    curriculum_every_env_steps: int = Field(100_000, ge=1)  # L2F multiplies reward weights every 100k steps
    recompute_rewards: bool = False  # rescore the replay at each curriculum step (L2F's "w" ablation switch)
    replay_capacity: int = Field(200_000, ge=1)
    eval_every_env_steps: int = Field(0, ge=0)  # 0: no periodic evaluation; else quick evals to stop early
    eval_episodes: int = Field(200, ge=1)
    stop_at_success_rate: float | None = Field(None, gt=0, le=1)  # stop when a periodic eval reaches it
    # evaluate on a child process (the second core) while training goes on: frequent evaluations cost little wall time
    eval_in_subprocess: bool = False
    keep_best_policy: bool = False  # end with the actor of the best periodic evaluation (its seeds are not the final eval's)
    max_updates: int | None = Field(None, ge=1)


class VectorSessionConfig(_Strict):
    trainer: Literal["vectorized"] = "vectorized"
    name: str
    env: Literal["quadrotor_hover"] = "quadrotor_hover"
    env_kwargs: dict[str, Any] = {}  # HoverTaskConfig overrides: the task trained on and evaluated
    train_env_kwargs: dict[str, Any] = {}  # further overrides for the training envs only (e.g. stricter termination)
    seed: int = 0
    td3: TD3Settings = TD3Settings()
    train: VectorTrainSettings = VectorTrainSettings()
    final_eval_episodes: int = Field(1000, ge=1)  # the 1,000 evaluation episodes
    export_c: bool = True  # generate C, compile it with the firmware loop (gcc) and fly the simulator with it
    firmware_eval_episodes: int = Field(50, ge=1)  # the "few dozen" closed-loop C episodes, at 500 Hz


def load_vector_session(path: str | Path) -> VectorSessionConfig:
    return validate_session_file(path, VectorSessionConfig.model_validate)
