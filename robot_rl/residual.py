"""The ``residual:`` section of a session file: residual RL on a frozen base policy (see ``policies/residual.py``).

Kept free of torch and gymnasium so that loading a session file stays light.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

EXPERT_BASE = "expert"


class ResidualConfig(BaseModel):
    """executed = clip(a_base + alpha_t * tanh(r(obs, a_base)), -1, 1) in normalized action units."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    base: str = Field(description="'expert' (the env's scripted controller) or the path of an exported ONNX policy")
    alpha: float = Field(default=0.1, gt=0.0, le=2.0, description="residual scale, normalized action units (ResiP: 0.1)")
    ramp_steps: int = Field(default=2000, ge=0, description="env steps over which alpha_t grows from 0 to alpha (0: at once)")

    @field_validator("base")
    @classmethod
    def _absolute_base(cls, value: str) -> str:
        # stored absolute, so learner and actor processes started from elsewhere find the same file
        return value if value == EXPERT_BASE else str(Path(value).expanduser().resolve())
