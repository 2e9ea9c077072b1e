"""``robot-rl calibrate intrinsics|hand-eye|time-offset …``: the calibration tools (``calibration/cli.py``)."""

from __future__ import annotations

import argparse


def run(args) -> int:
    from calibration.cli import main

    return main(args.calibration_args)


def register(sub) -> None:
    parser = sub.add_parser("calibrate", help="camera intrinsics, hand-eye and camera/robot time offset",
                            description="Arguments go to the calibration tool; `robot-rl calibrate -- --help` lists them.")
    parser.add_argument("calibration_args", nargs=argparse.REMAINDER,
                        help="intrinsics DIR --board 9x6 --square-mm 25 | hand-eye POSES IMAGES… --mode … | time-offset CAM ROBOT")
    parser.set_defaults(func=run)
