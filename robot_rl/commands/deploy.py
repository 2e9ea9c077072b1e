"""``robot-rl deploy EXPORT --robot CONFIG [--seconds S]``: run an exported policy on a robot in real time.

Refuses an export whose observation/action layout or rate does not match the robot config, then runs
the fixed-rate loop (policies/runtime) and prints its summary as one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

BACKENDS = ("onnxruntime", "c")


def make_runner(export: str | Path, robot_path: str | Path, backend: str = "onnxruntime"):
    """(runner, driver) for ``export`` on the robot in ``robot_path``; ``runner.run`` connects the driver, close it after."""
    from policies.export.onnx_export import read_spec
    from policies.runtime.backends import CBackend, OrtBackend
    from policies.runtime.drivers import make_driver
    from policies.runtime.robot_config import load_robot
    from policies.runtime.runner import PolicyRunner, check_compatible, open_export

    robot = load_robot(robot_path)
    onnx_path = open_export(export)
    spec = read_spec(onnx_path)
    driver = make_driver(robot)
    try:
        check_compatible(spec, robot, driver)
        if backend == "c":
            engine = CBackend(onnx_path, onnx_path.parent / "c" / "float32", build_dir=onnx_path.parent)
        else:
            engine = OrtBackend(onnx_path, threads=robot.threads)
    except BaseException:
        driver.close()
        raise
    return PolicyRunner(engine, driver, robot, spec), driver


def run(args) -> int:
    from policies.export.onnx_export import ExportError
    from policies.runtime.robot_config import RobotConfigError
    from policies.runtime.runner import LayoutMismatch

    try:
        runner, driver = make_runner(args.export, args.robot, args.backend)
    except (ExportError, RobotConfigError, LayoutMismatch, FileNotFoundError, ValueError) as err:
        print(f"robot-rl deploy: {err}", file=sys.stderr)
        return 2
    try:
        summary = runner.run(seconds=args.seconds)
    except KeyboardInterrupt:
        summary = {"interrupted": True}
    finally:
        driver.close()
    print(json.dumps(summary))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("deploy", help="run an exported policy on a robot at its control rate")
    parser.add_argument("export", help="directory written by robot-rl export (or its policy.onnx)")
    parser.add_argument("--robot", required=True, help="robot config, e.g. launch/deploy_sim_pick_cube.yaml")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to run (default 10)")
    parser.add_argument("--backend", choices=BACKENDS, default="onnxruntime",
                        help="'c' runs the generated C (needs an export made with --format c)")
    parser.set_defaults(func=run)
