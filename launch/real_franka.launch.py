"""ROS 2 launch: real Franka session: RealSense + franky + SpaceMouse + actor.

  ros2 launch robot_rl_ros real_franka.launch.py policy:=runs/NAME/exports/policy.onnx
  ros2 launch robot_rl_ros real_franka.launch.py session:=launch/sim_pick_cube_pixels.yaml run_dir:=runs/NAME

Parameters come from launch/ros/real_franka.yaml (see robot_rl_ros.launch_plan); without a policy the
actor is left out and the devices run on their own (teleoperation, data recording).
"""

from robot_rl_ros.launch_plan import launch_description


def generate_launch_description():
    return launch_description("real_franka")
