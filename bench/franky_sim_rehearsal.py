"""Hardware rehearsal: `robot-rl train launch/franky_sim_reach.yaml` against franky-sim, timed.

Prints one JSON line: session wall time, env steps, the env's real-time figures (missed deadlines,
period percentiles, TCP path length, from the actor's log) and the final evaluation.

    python bench/franky_sim_rehearsal.py [--run-dir /tmp/rehearsal] [--max-env-steps 600]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch" / "franky_sim_reach.yaml"


def session_file(directory: Path, **train_overrides) -> Path:
    """The launch file, with the env id prefixed by its module so every process registers it, wired into sim2real or not."""
    config = yaml.safe_load(LAUNCH.read_text())
    config["env"] = "robot_rl.hardware_envs:" + config["env"]
    config["train"].update(train_overrides)
    path = directory / LAUNCH.name
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def env_summaries(log_path: Path) -> list[dict]:
    from robot_rl.hardware_envs.franky_reach import SUMMARY_PREFIX

    text = log_path.read_text() if log_path.exists() else ""
    return [json.loads(line.split(SUMMARY_PREFIX, 1)[1]) for line in text.splitlines() if SUMMARY_PREFIX in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="/tmp/rehearsal")
    parser.add_argument("--max-env-steps", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from robot_rl.session import train

    run_dir = Path(args.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh session, not a resumed one
    with tempfile.TemporaryDirectory() as tmp:
        config = session_file(Path(tmp), **({"max_env_steps": args.max_env_steps} if args.max_env_steps else {}))
        t0 = time.monotonic()
        report = train(str(config), run_dir=str(run_dir), quiet=True, log=lambda *_: None)
        wall_s = time.monotonic() - t0
    envs = env_summaries(run_dir / "logs" / "actor.log")
    # the actor's training env took exactly the session's steps in a fresh run; its eval env took the rest
    training = next((e for e in envs if e["steps"] == report["env_steps"]), max(envs, key=lambda e: e["steps"], default={}))
    print(json.dumps({
        "bench": "franky_sim_rehearsal", "wall_s": round(wall_s, 1), "env_steps": report["env_steps"],
        "learner_updates": report["learner_updates"], "achieved_utd": report["achieved_utd"],
        "train_env": {k: training.get(k) for k in ("steps", "episodes", "successes", "missed_deadlines", "max_late_ms",
                                                   "period_ms_p50", "period_ms_p99", "path_length_m", "home_return_s_mean",
                                                   "watchdog_holds")},
        "actor_envs": len(envs), "eval_return": report["eval_return"], "success_rate": report["success_rate"],
        "onnx_success_rate": report["onnx_success_rate"],
    }))


if __name__ == "__main__":
    main()
