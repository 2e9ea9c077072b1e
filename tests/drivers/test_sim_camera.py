"""SimCamera: MuJoCo rendering on the capture thread, shadows off, depth, intrinsics from fovy."""

from __future__ import annotations

import time

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

from drivers.cameras.sim import SimCamera  # noqa: E402
from drivers.errors import DeviceError  # noqa: E402

SCENE = """
<mujoco>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1" castshadow="true"/>
    <geom type="plane" size="2 2 0.1" rgba="0.2 0.2 0.2 1"/>
    <body name="box" pos="0 0 0.05">
      <freejoint/>
      <geom type="box" size="0.1 0.1 0.05" rgba="1 0 0 1"/>
    </body>
    <camera name="top" pos="0 0 1.0" xyaxes="1 0 0 0 1 0" fovy="60"/>
  </worldbody>
</mujoco>
"""


@pytest.fixture
def scene():
    model = mujoco.MjModel.from_xml_string(SCENE)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


def test_renders_color_depth_and_intrinsics(scene):
    model, data = scene
    with SimCamera(model, data, "top", width=96, height=64, fps=30, depth=True) as camera:
        frame = camera.read(timeout_s=10.0)  # the first frame creates the GL context
        later = camera.read(timeout_s=1.0, newer_than=frame.seq)
    intr = frame.intrinsics
    assert intr.fy == pytest.approx(32 / np.tan(np.deg2rad(30))) and intr.fx == intr.fy and (intr.cx, intr.cy) == (48, 32)
    centre = frame.color[32, 48]
    assert int(centre[0]) - max(centre[1], centre[2]) > 100  # the red box under the camera (lit: about 255, 101, 101)
    assert frame.depth_m[32, 48] == pytest.approx(0.9, abs=0.005)  # camera at 1.0 m, box top at 0.1 m
    assert frame.depth_m[2, 2] == pytest.approx(1.0, abs=0.005)  # floor in a corner: z-depth, as RealSense reports
    assert later.seq > frame.seq and later.stamp_ns > frame.stamp_ns
    assert frame.sensor_stamp_ns == 0  # simulation time of the rendered state


def test_paced_at_fps_and_follows_the_simulation(scene):
    model, data = scene
    with SimCamera(model, data, "top", width=32, height=32, fps=20) as camera:
        first = camera.read(timeout_s=10.0)
        with camera.lock:
            data.qpos[0] = 10.0  # move the box out of view
            mujoco.mj_forward(model, data)
        time.sleep(0.5)
        last = camera.read()
    periods = (last.stamp_ns - first.stamp_ns) / 1e9 / (last.seq - first.seq)
    assert periods == pytest.approx(1 / 20, rel=0.2)
    r, g, b = (int(c) for c in last.color[16, 16])
    assert abs(r - g) < 20 and abs(r - b) < 20  # grey floor now, not the red box


def test_unknown_camera_is_one_sentence(scene):
    model, data = scene
    with pytest.raises(DeviceError, match=r"no camera 'side'; use one of \['top'\]"):
        SimCamera(model, data, "side").connect()
