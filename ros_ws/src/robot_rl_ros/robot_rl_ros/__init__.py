"""robot_rl over ROS 2: thin rclpy nodes; the logic lives in plain-Python objects beside them.

Only `ros_io.py` and the `*_node.py` modules import rclpy; the rest is tested without ROS.
"""
