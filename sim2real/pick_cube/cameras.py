"""Offscreen rendering of the scene's named cameras into uint8 RGB arrays."""

from __future__ import annotations

import mujoco
import numpy as np

RENDERER_HELP = (
    "MuJoCo could not create an offscreen renderer: install the Debian package libegl1 and set "
    "MUJOCO_GL=egl, or install libosmesa6 and set MUJOCO_GL=osmesa, before starting Python."
)


class CameraRenderer:
    """Renders each of `cameras` at `image_size` x `image_size` pixels, drawing only `geom_groups`."""

    def __init__(self, model: mujoco.MjModel, cameras, image_size: int, geom_groups):
        missing = [c for c in cameras if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, c) < 0]
        if missing:
            raise ValueError(f"unknown camera(s) {missing}: choose from the scene's 'front' and 'wrist'.")
        try:
            self._renderer = mujoco.Renderer(model, image_size, image_size)
        except Exception as error:  # GL backends fail with assorted types (FatalError, RuntimeError, ...)
            raise RuntimeError(f"{RENDERER_HELP} ({error})") from None
        self._camera_ids = {c: model.camera(c).id for c in cameras}
        self._options = mujoco.MjvOption()
        self._options.geomgroup[:] = [int(g in geom_groups) for g in range(len(self._options.geomgroup))]
        self.image_shape = (image_size, image_size, 3)

    def render(self, data: mujoco.MjData, camera: str) -> np.ndarray:
        self._renderer.update_scene(data, camera=self._camera_ids[camera], scene_option=self._options)
        return self._renderer.render()

    def close(self) -> None:
        self._renderer.close()
