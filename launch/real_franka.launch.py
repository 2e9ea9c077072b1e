"""ROS 2 launch: real Franka session: RealSense + franky + SpaceMouse + actor.

  ros2 launch robot_rl_ros real_franka.launch.py policy:=runs/NAME/exports/policy.onnx
  ros2 launch robot_rl_ros real_franka.launch.py session:=launch/sim_pick_cube_pixels.yaml run_dir:=runs/NAME

Parameters come from launch/ros/real_franka.yaml (see robot_rl_ros.launch_plan); without a policy the
actor is left out and the devices run on their own (teleoperation, data recording).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_rl_ros.launch_plan import plan, plan_from_session
from robot_rl_ros.ros_io import FASTDDS_PROFILE

ROBOT = "real_franka"


def _nodes(context):
    session = LaunchConfiguration("session").perform(context)
    policy = LaunchConfiguration("policy").perform(context)
    run_dir = LaunchConfiguration("run_dir").perform(context)
    nodes = plan_from_session(session, run_dir or None, ROBOT) if session else plan(ROBOT, policy)
    return [
        Node(package="robot_rl_ros", executable=n.executable, name=n.name, namespace=n.namespace, parameters=[n.parameters], output="screen")
        for n in nodes
        if n.name != "actor" or n.parameters.get("policy_path")
    ]


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("policy", default_value="", description="exported ONNX policy for the actor"),
        DeclareLaunchArgument("session", default_value="", description="session YAML (rate and robot from it)"),
        DeclareLaunchArgument("run_dir", default_value="", description="run directory holding exports/policy.onnx"),
        SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE)),
        OpaqueFunction(function=_nodes),
    ])
