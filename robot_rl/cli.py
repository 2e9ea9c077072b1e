"""The ``robot-rl`` command line: one module per subcommand under ``robot_rl/commands``."""

from __future__ import annotations

import argparse
import importlib
import sys

from drivers.errors import DeviceError
from robot_rl.config import ConfigError

COMMAND_MODULES = [
    "robot_rl.commands.train",
    "robot_rl.commands.export",
    "robot_rl.commands.deploy",
    "robot_rl.commands.doctor",
    "robot_rl.commands.keys",
    "robot_rl.commands.calibrate",
    "robot_rl.commands.train_reward",
    "robot_rl.commands.serve",
    "robot_rl.commands.train_bc",
    "robot_rl.commands.record_demos",
    "robot_rl.commands.record_rewards",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="robot-rl", description="Reinforcement learning on real robots.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"robot-rl: configuration error:\n{err}", file=sys.stderr)
        return 2
    except DeviceError as err:
        print(f"robot-rl: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("robot-rl: interrupted; the run directory keeps what was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
