"""The camera frames a success classifier sees, whatever the policy observes.

A pixels env already carries them in its observation; a state env (pick-cube in `state` mode) is
rendered from its MuJoCo scene with the same cameras and geometry groups as its pixels mode, so the
policy can stay state-only while its reward comes from images.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces


def session_image_settings(env, cameras=None, image_size: int | None = None) -> tuple[tuple[str, ...], int]:
    """The session's classifier cameras and image size: as configured, else the observation's first camera, else front/64."""
    space = env.observation_space
    image_keys = [k for k, s in space.spaces.items() if len(s.shape) == 3] if isinstance(space, spaces.Dict) else []
    cameras = tuple(cameras) if cameras else tuple(image_keys[:1]) or ("front",)
    if image_size is None:
        image_size = int(space[cameras[0]].shape[0]) if cameras[0] in image_keys else 64
    return cameras, int(image_size)


class ClassifierFrames:
    """`frames(observation) -> {camera: uint8 (S, S, 3)}` for the env's current state."""

    def __init__(self, env, cameras, image_size: int):
        self.cameras, self.image_size = tuple(cameras), int(image_size)
        space = env.observation_space
        self.from_observation = isinstance(space, spaces.Dict) and all(
            c in space.spaces and tuple(space[c].shape) == (self.image_size, self.image_size, 3) for c in self.cameras)
        self._renderer = None
        if self.from_observation:
            return
        unwrapped = env.unwrapped
        if not (hasattr(unwrapped, "model") and hasattr(unwrapped, "data")):
            raise ValueError(f"{type(unwrapped).__name__} has neither the cameras {list(self.cameras)} at {self.image_size}x"
                             f"{self.image_size} in its observation nor a MuJoCo scene to render them from: use a "
                             "pixels env with those cameras, or set reward.source: task.")
        from sim2real.pick_cube.cameras import CameraRenderer
        from sim2real.pick_cube.scene import CAMERA_GEOM_GROUPS

        self._data = unwrapped.data
        self._renderer = CameraRenderer(unwrapped.model, self.cameras, self.image_size, CAMERA_GEOM_GROUPS)

    def __call__(self, observation) -> dict[str, np.ndarray]:
        if self.from_observation:
            return {c: observation[c] for c in self.cameras}
        return {c: self._renderer.render(self._data, c).copy() for c in self.cameras}

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
