"""The session file's `reward:` section: where a session's reward comes from.

    reward:
      source: classifier            # task (default): the env's own reward
      checkpoint: reward/classifier_v1.pt   # relative to the run directory, or absolute
      train_if_missing: true        # the session trains one (simulated pick-cube frames) when the file is missing
      cameras: [front]              # what the session shows the classifier; must match the checkpoint
      image_size: 64
      threshold: null               # null: the checkpoint's own (chosen for its target false-positive rate)
      terminate_on_success: true
      success_frames: 2             # consecutive success frames before the verdict is success
      verdict_deadline_ms: 100
      human_override: {device: gamepad, success_button: 2, failure_button: 3}

A relative checkpoint is under the run directory: the session makes it absolute when it prepares
the run (`robot_rl.reward.session.prepare_reward`); an env made outside a session reads it relative
to the working directory. With `human_override`, the held buttons decide at every step (a button
released hands the verdict back to the classifier). Kept free of torch and gymnasium imports:
`robot_rl.config` imports it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class HumanOverrideConfig(BaseModel):
    """A button that overrides the classifier while held: success (reward 1, episode ends) or failure."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    device: Literal["gamepad", "spacemouse"] = Field(description="an intervention device that reports buttons")
    path: str | None = Field(default=None, description="device path (gamepad: /dev/input/js*); default: the first found")
    success_button: int = Field(default=2, ge=0, description="held: the step counts as a success (xpad: X)")
    failure_button: int | None = Field(default=3, ge=0, description="held: the step counts as no success (xpad: Y)")


class RewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    source: Literal["task", "classifier"] = Field(default="task", description="task: the env's reward; classifier: images only")
    checkpoint: str = Field(default="reward/classifier_v1.pt", description="classifier checkpoint, relative to the run or absolute")
    train_if_missing: bool = Field(default=True, description="train a pick-cube classifier into `checkpoint` when it is missing")
    train_episodes: int = Field(default=160, ge=10, description="simulated episodes recorded for that classifier (train-reward default)")
    target_fpr: float = Field(default=0.01, ge=0.0, lt=1.0, description="false-positive rate its threshold is chosen for")
    cameras: list[str] | None = Field(default=None, description="default: the env's first camera (pixels) or ['front']")
    image_size: int | None = Field(default=None, ge=8, description="default: the env's image_size (pixels) or 64")
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="overrides the checkpoint's threshold")
    terminate_on_success: bool = True
    success_frames: int = Field(default=1, ge=1, description="consecutive success frames the verdict needs (debounce)")
    verdict_deadline_ms: float = Field(
        default=100.0, gt=0.0, description="a step waits this long for its own frame's verdict (one 10 Hz period)")
    human_override: HumanOverrideConfig | None = None
