"""A simulated camera: renders a MuJoCo model/data pair with `mujoco.Renderer` on the capture thread.

Shadows are off (they cost more than the rest of the frame in software rendering and are not what
a policy should key on). Pass the lock that guards `data` when another thread steps the physics
(e.g. `MujocoArm.lock`). `sensor_stamp_ns` carries the simulation time of the rendered state.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from drivers.arms.base import now_ns
from drivers.cameras.base import Camera, Frame, Intrinsics
from drivers.errors import DeviceError, require


class SimCamera(Camera):
    def __init__(
        self,
        model,
        data,
        camera: str | int = -1,
        *,
        width: int = 128,
        height: int = 128,
        fps: float = 30.0,
        depth: bool = False,
        lock: threading.Lock | threading.RLock | None = None,
    ):
        super().__init__()
        self.model, self.data = model, data
        self.camera = camera
        self.width, self.height = width, height
        self.period_s = 1.0 / fps
        self.depth = depth
        self.lock = lock or threading.RLock()
        self.name = f"sim camera {camera}"
        self._renderer = None
        self._next_s = 0.0

    def _open(self) -> None:
        self._mj = require("mujoco", "pip install mujoco")
        mujoco = self._mj
        if isinstance(self.camera, str) and mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, self.camera) < 0:
            names = [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(self.model.ncam)]
            raise DeviceError(f"the MuJoCo model has no camera '{self.camera}'; use one of {names} or -1 for the free camera.")
        self._next_s = time.monotonic()

    def intrinsics(self) -> Intrinsics:
        mujoco = require("mujoco", "pip install mujoco")
        cam_id = self.camera if isinstance(self.camera, int) else mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, self.camera)
        fovy_deg = float(self.model.cam_fovy[cam_id]) if cam_id >= 0 else float(self.model.vis.global_.fovy)
        return Intrinsics.from_fov(self.width, self.height, fovy_deg)

    def _grab(self) -> Frame | None:
        mujoco = self._mj
        if self._renderer is None:  # the GL context belongs to the thread that renders
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
            self._intrinsics = self.intrinsics()
        self._next_s += self.period_s
        delay_s = self._next_s - time.monotonic()
        if delay_s > 0:
            time.sleep(delay_s)
        else:
            self._next_s = time.monotonic()  # behind: no burst of catch-up frames
        renderer = self._renderer
        with self.lock:
            renderer.update_scene(self.data, camera=self.camera)
            sim_time_ns = int(round(self.data.time * 1e9))
            stamp_ns = now_ns()
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        color = renderer.render().copy()
        depth_m = None
        if self.depth:
            renderer.enable_depth_rendering()
            depth_m = renderer.render().astype(np.float32)
            renderer.disable_depth_rendering()
        return Frame(color, stamp_ns, 0, self._intrinsics, depth_m=depth_m, sensor_stamp_ns=sim_time_ns)

    def _capture_thread_exit(self) -> None:
        if self._renderer is not None:  # its GL context is current on this thread only
            self._renderer.close()
            self._renderer = None

    def _release(self) -> None:
        pass
