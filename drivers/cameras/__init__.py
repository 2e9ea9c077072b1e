"""Cameras: the `Camera` interface (newest-frame capture thread) and its backends; SDKs load lazily."""

from drivers.cameras.base import Camera, ClockOffsetEstimator, Frame, Intrinsics
from drivers.cameras.opencv import OpenCVCamera
from drivers.cameras.realsense import RealSenseCamera
from drivers.cameras.sim import SimCamera

__all__ = ["Camera", "ClockOffsetEstimator", "Frame", "Intrinsics", "OpenCVCamera", "RealSenseCamera", "SimCamera"]
