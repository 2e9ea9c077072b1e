"""The real-time policy runner: an inference backend, a fixed-rate loop with deadline statistics and
a safe fallback, driving a robot described by a robot config. Plain Python, so a ROS 2 node can wrap it."""
