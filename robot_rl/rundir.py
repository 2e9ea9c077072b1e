"""The run directory: everything a session writes, so that restarting with it resumes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def endpoints(self) -> Path:
        return self.root / "endpoints.json"

    @property
    def spec(self) -> Path:
        """Observation/action layout, so that the learner never needs to build the environment."""
        return self.root / "spec.json"

    @property
    def replay(self) -> Path:
        return self.root / "replay"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def demos(self) -> Path:
        return self.root / "demos"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def eval_log(self) -> Path:
        return self.logs / "eval.jsonl"

    @property
    def final_policy(self) -> Path:
        return self.checkpoints / "final_policy.safetensors"

    @property
    def status(self) -> Path:
        return self.root / "learner_status.json"

    def make(self) -> "RunDir":
        for path in (self.root, self.demos, self.checkpoints, self.logs, self.exports, self.replay):
            path.mkdir(parents=True, exist_ok=True)
        return self


def write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_in_process_run(config, run_dir, train_overrides: dict, seed: int | None):
    """(RunDir, config) for an in-process trainer: overrides applied and re-validated, ``config.yaml`` written.

    ``config`` is a pydantic session model with ``name``, ``seed`` and a ``train`` section; ``None``
    overrides are ignored; the run defaults to ``runs/<name>``.
    """
    import yaml

    train = config.train.model_copy(update={k: v for k, v in train_overrides.items() if v is not None})
    config = config.model_copy(update={"train": train, **({"seed": seed} if seed is not None else {})})
    config = type(config).model_validate(config.model_dump())  # re-validate the overrides
    run = RunDir(Path(run_dir) if run_dir else Path("runs") / config.name)
    run.make()
    run.config.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return run, config
