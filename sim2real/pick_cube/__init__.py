"""Simulated Franka FR3 pick-cube task (gymnasium env) and its scripted expert."""

from sim2real.pick_cube.env import PickCubeEnv
from sim2real.pick_cube.expert import PickCubeExpert

__all__ = ["PickCubeEnv", "PickCubeExpert"]
