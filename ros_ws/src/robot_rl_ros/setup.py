import os
from glob import glob

from setuptools import find_packages, setup

package_name = "robot_rl_ros"
HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCH_DIR = os.path.relpath(os.path.join(HERE, "..", "..", "..", "launch"))  # the repository's launch/ folder
NODES = ["camera_node", "arm_node", "teleop_node", "actor_node", "deploy_node", "quadrotor_node", "rc_car_node", "reward_node",
         "policy_server_node"]

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        # launch files and per-robot parameter files live in the repository's launch/ folder
        ("share/" + package_name + "/launch", glob(os.path.join(LAUNCH_DIR, "*.launch.py"))),
        ("share/" + package_name + "/config", glob(os.path.join(LAUNCH_DIR, "ros", "*.yaml"))),
    ],
    install_requires=["setuptools"],
    package_data={package_name: ["fastdds_profile.xml"]},
    zip_safe=True,
    maintainer="robot_rl",
    maintainer_email="robot_rl@example.com",
    description="Thin ROS 2 nodes around robot_rl.",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"{name} = {package_name}.{name}:main" for name in NODES]},
)
