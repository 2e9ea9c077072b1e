"""The robot a deployed policy drives: a small YAML file, validated; errors name the field and the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class RobotConfigError(ValueError):
    """A robot config that cannot be used; the message names the file and the field."""


class RobotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    driver: Literal["gym"] = Field(default="gym", description="'gym': a simulated twin made with gymnasium.make")
    env: str = Field(description="gymnasium id of the simulated robot, e.g. robot_rl/PickCube-v0")
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    control_hz: float = Field(gt=0, description="must equal the export's control_hz (the rate the policy learned at)")
    obs_layout: list[tuple[str, int]] | None = Field(default=None, description="named state parts; checked against the export")
    action_layout: list[tuple[str, int]] | None = Field(default=None, description="named action parts; checked against the export")
    fallback: Literal["hold", "zero"] = Field(default="hold", description="action applied on overrun, NaN or stale obs")
    hold_action: list[float | None] | None = Field(
        default=None, description="per action entry: a value, or null to repeat the last applied value (default: all null)")
    stale_obs_ms: float = Field(default=50.0, gt=0, description="an observation older than this is not acted on")
    inference_budget_ms: float | None = Field(default=None, gt=0, description="default: half the control period")
    watchdog_ms: float | None = Field(default=None, gt=0, description="no completed step for this long: driver safe state; default 3 periods")
    spin_us: float = Field(default=300.0, ge=0, description="busy-wait this long before each deadline instead of sleeping")
    cpu: int | None = Field(default=None, ge=0, description="pin the loop to this CPU (os.sched_setaffinity)")
    realtime_priority: int | None = Field(default=None, ge=1, le=99, description="SCHED_FIFO priority, where permitted")
    threads: int = Field(default=1, ge=1, description="onnxruntime intra-op threads")

    @model_validator(mode="after")
    def _check(self) -> "RobotConfig":
        if self.hold_action is not None and self.action_layout is not None:
            if len(self.hold_action) != sum(n for _, n in self.action_layout):
                raise ValueError("hold_action needs one entry per action dimension of action_layout")
        return self

    @property
    def period_ms(self) -> float:
        return 1000.0 / self.control_hz


def load_robot(path: str | Path) -> RobotConfig:
    path = Path(path)
    if not path.is_file():
        raise RobotConfigError(f"{path}: no such robot config (the shipped ones are launch/deploy_*.yaml)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise RobotConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise RobotConfigError(f"{path}: expected a mapping of settings at the top level")
    try:
        return RobotConfig.model_validate(data)
    except ValidationError as err:
        lines = []
        for item in err.errors():
            field = ".".join(str(p) for p in item["loc"]) or "(top level)"
            if item["type"] == "extra_forbidden":
                lines.append(f"{path}: unknown key '{field}'")
            elif item["type"] == "missing":
                lines.append(f"{path}: missing required key '{field}'")
            else:
                lines.append(f"{path}: field '{field}': {item['msg']} (got {item.get('input')!r})")
        raise RobotConfigError("\n".join(lines)) from None
