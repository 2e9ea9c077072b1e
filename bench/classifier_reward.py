"""Pick-cube trained with the image success classifier as its only reward: the TRUE success it reaches.

Usage: bench/classifier_reward.py [--max-minutes M] [--max-env-steps N] [--seed S] [--classifier PT]
       bench/classifier_reward.py --report RUN/report.json   (the line for a session already run)
Runs launch/sim_pick_cube_classifier_reward.yaml in a temporary run directory (the session first
trains its classifier, ~2 min, unless --classifier names one) and prints one JSON line:
`true_success` (final deterministic evaluation, the simulator's own success test), `env_steps`,
`classifier_disagreements` (training episodes whose classifier verdict differed from the true
success), wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def line(report: dict, wall_s: float | None = None, cpu: float | None = None) -> dict:
    classifier = report.get("classifier_reward") or {}
    return {"task": "pick_cube_classifier_reward", "true_success": report.get("success_rate"),
            "onnx_true_success": report.get("onnx_success_rate"), "eval_episodes": report.get("eval_episodes"),
            "env_steps": report.get("env_steps"), "training_wall_s": report.get("training_wall_s"),
            "wall_s": wall_s if wall_s is not None else report.get("wall_s"), "cpu_s": cpu,
            "classifier_disagreements": classifier.get("classifier_disagreements"),
            "classifier_false_positives": classifier.get("classifier_false_positives"),
            "classifier_false_negatives": classifier.get("classifier_false_negatives"),
            "training_episodes": classifier.get("training_episodes"), "stop_reason": report.get("stop_reason"),
            "seed": report.get("seed")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-minutes", type=float, default=25.0)
    parser.add_argument("--max-env-steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classifier", help="an existing checkpoint to copy in (skips training one)")
    parser.add_argument("--report", help="print the line for this finished session's report.json instead")
    args = parser.parse_args()
    if args.report:
        print(json.dumps(line(json.loads(Path(args.report).read_text()))))
        return
    from robot_rl.session import train

    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        if args.classifier:
            (run_dir / "reward").mkdir(parents=True)
            shutil.copy(args.classifier, run_dir / "reward" / "classifier_v1.pt")
        report = train(ROOT / "launch/sim_pick_cube_classifier_reward.yaml", run_dir=run_dir,
                       max_env_steps=args.max_env_steps, max_minutes=args.max_minutes, seed=args.seed, quiet=True,
                       log=lambda *_: None)
    print(json.dumps(line(report, round(time.monotonic() - start, 1), round(cpu_s(), 1))))


if __name__ == "__main__":
    main()
