"""Pixel pick-cube learning run: env steps/s of the whole session and the success it reaches.

Usage: bench/pick_cube_pixels.py [--max-minutes M] [--max-env-steps N] [--seed S]. Runs
launch/sim_pick_cube_pixels.yaml (actor renders two 128x128 cameras, learner trains the CNN
with DrQ) in a temporary run directory and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from robot_rl.session import train

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-minutes", type=float, default=30.0)
    parser.add_argument("--max-env-steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = train(ROOT / "launch/sim_pick_cube_pixels.yaml", run_dir=Path(tmp) / "run", max_env_steps=args.max_env_steps,
                       max_minutes=args.max_minutes, seed=args.seed, quiet=True, log=lambda *_: None)
    keys = ("env_steps", "env_steps_per_s", "training_wall_s", "learner_updates", "achieved_utd", "success_rate",
            "onnx_success_rate", "eval_episodes", "stop_reason", "seed")
    print(json.dumps({"task": "pick_cube_pixels", **{k: report.get(k) for k in keys}}))


if __name__ == "__main__":
    main()
