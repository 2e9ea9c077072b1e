"""The ``robot-rl`` command line."""

from __future__ import annotations

import argparse
import json
import sys

from robot_rl.config import ConfigError


def _train(args) -> int:
    from robot_rl.session import train

    report = train(args.config, run_dir=args.run_dir, max_env_steps=args.max_env_steps, max_minutes=args.max_minutes,
                   seed=args.seed, quiet=args.quiet)
    keys = ("task", "env_steps", "wall_s", "learner_updates", "eval_return", "success_rate", "onnx_eval_return",
            "onnx_success_rate")
    print(json.dumps({k: report.get(k) for k in keys}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robot-rl", description="Reinforcement learning on real robots.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="run a training session (learner + actor), then evaluate, export and report")
    train.add_argument("config", help="session file, e.g. launch/sim_pick_cube.yaml")
    train.add_argument("--run-dir", help="run directory (default runs/<name>); an existing one is resumed")
    train.add_argument("--max-env-steps", type=int)
    train.add_argument("--max-minutes", type=float)
    train.add_argument("--seed", type=int)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"robot-rl: configuration error:\n{err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("robot-rl: interrupted; the run directory keeps what was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
