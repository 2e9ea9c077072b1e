"""Which nodes a session starts, with which parameters: the session YAML -> launch mapping, without `launch`.

A robot's parameter file (`launch/ros/<robot>.yaml`) holds one `ros__parameters` block per node name;
`plan()` reads it, adds the session's rate and the run's exported policy, and returns `NodePlan`s that
the `*.launch.py` files turn into `launch_ros.actions.Node`s (and that tests check without ROS).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml



def _params_dir() -> Path:
    """launch/ros in a source checkout; the package's share/config once installed by colcon."""
    source = Path(__file__).resolve().parents[4] / "launch" / "ros"
    if source.is_dir():
        return source
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory("robot_rl_ros")) / "config"


PARAMS_DIR = _params_dir()
NAMESPACES = {"camera": "camera"}  # camera topics live under /camera; everything else at the root
ENV_ROBOTS = {"robot_rl/PickCube-v0": "sim_franka", "robot_rl/PickCubePixels-v0": "sim_franka"}


@dataclass
class NodePlan:
    executable: str  # robot_rl_ros console script, also the module robot_rl_ros.<executable>
    name: str
    namespace: str
    parameters: dict = field(default_factory=dict)


def robot_params(robot: str) -> dict:
    path = PARAMS_DIR / f"{robot}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))
        raise ValueError(f"no parameter file for robot '{robot}' ({path}); use one of {known} or add launch/ros/{robot}.yaml.")
    return yaml.safe_load(path.read_text()) or {}


def plan(robot: str, policy_path: str = "", rate_hz: float | None = None) -> list[NodePlan]:
    nodes = []
    for name, block in robot_params(robot).items():
        params = dict((block or {}).get("ros__parameters", {}))
        if name == "actor":
            if policy_path:
                params["policy_path"] = str(policy_path)
            if rate_hz:
                params["rate_hz"] = float(rate_hz)
        nodes.append(NodePlan(f"{name}_node", name, NAMESPACES.get(name, ""), params))
    return nodes


def plan_from_session(session_path: str | Path, run_dir: str | Path | None = None, robot: str | None = None) -> list[NodePlan]:
    """The nodes for a session file: robot from its env (or `robot`), rate from control_hz, policy from the run."""
    from robot_rl.config import load_session

    config = load_session(session_path)
    robot = robot or ENV_ROBOTS.get(config.env)
    if robot is None:
        raise ValueError(f"session env '{config.env}' has no ROS robot; pass robot:=<name of a launch/ros/*.yaml file>.")
    policy = Path(run_dir) / "exports" / "policy.onnx" if run_dir else ""
    return plan(robot, str(policy), config.control_hz)


def launch_description(robot: str):
    """The `ros2 launch` description for `robot`: arguments policy/session/run_dir, nodes from `plan`.

    `launch` and `launch_ros` are imported here so the planning above stays importable without them.
    """
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from robot_rl_ros.ros_io import FASTDDS_PROFILE

    def nodes(context):
        session = LaunchConfiguration("session").perform(context)
        policy = LaunchConfiguration("policy").perform(context)
        run_dir = LaunchConfiguration("run_dir").perform(context)
        planned = plan_from_session(session, run_dir or None, robot) if session else plan(robot, policy)
        return [
            Node(package="robot_rl_ros", executable=n.executable, name=n.name, namespace=n.namespace,
                 parameters=[n.parameters], output="screen")
            for n in planned
            if n.name != "actor" or n.parameters.get("policy_path")
        ]

    return LaunchDescription([
        DeclareLaunchArgument("policy", default_value="", description="exported ONNX policy for the actor"),
        DeclareLaunchArgument("session", default_value="", description="session YAML (rate and robot from it)"),
        DeclareLaunchArgument("run_dir", default_value="", description="run directory holding exports/policy.onnx"),
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE)),
        OpaqueFunction(function=nodes),
    ])
