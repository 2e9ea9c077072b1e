"""Test-wide settings: MuJoCo renders headless through EGL unless told otherwise."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
