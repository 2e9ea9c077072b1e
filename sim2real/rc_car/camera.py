"""Egocentric pinhole camera on the car, rendered by looking up the track's ground grid.

Each pixel's ray is intersected with the ground plane once, at construction; a frame is then one
rigid transform of those ground points per car and one gather from the grid (≈0.1 ms at 64×64).
"""

from __future__ import annotations

import numpy as np

from sim2real.rc_car.params import CameraParams
from sim2real.rc_car.track import Track

SKY_RGB = np.array([150, 185, 225], np.uint8)
HAZE_RGB = np.array([120, 150, 120], np.uint8)


class GroundCamera:
    def __init__(self, track: Track, params: CameraParams = CameraParams()):
        self.track, self.params = track, params
        h, w = params.height_px, params.width_px
        focal = 0.5 * w / np.tan(np.radians(params.horizontal_fov_deg) / 2)
        u, v = np.meshgrid(np.arange(w) + 0.5 - w / 2, np.arange(h) + 0.5 - h / 2)
        pitch = np.radians(params.pitch_down_deg)
        right, down = u / focal, v / focal
        # ray in the car frame (x forward, y left, z up) of a camera pitched down by `pitch`
        ray_x = np.cos(pitch) - down * np.sin(pitch)
        ray_y = -right
        ray_z = -np.sin(pitch) - down * np.cos(pitch)
        hits = ray_z < -1e-6
        t = np.where(hits, params.mount_height_m / np.maximum(-ray_z, 1e-6), 0.0)
        self.forward_m = (t * ray_x).ravel()
        self.left_m = (t * ray_y).ravel()
        self.sky = ~hits.ravel()
        self.haze = hits.ravel() & (np.hypot(self.forward_m, self.left_m) > params.max_range_m)
        self.shape = (h, w, 3)

    def render(self, x_m: np.ndarray, y_m: np.ndarray, yaw_rad: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 frames for N car poses."""
        c, s = np.cos(yaw_rad)[:, None], np.sin(yaw_rad)[:, None]
        wx = x_m[:, None] + c * self.forward_m - s * self.left_m
        wy = y_m[:, None] + s * self.forward_m + c * self.left_m
        rows, cols = self.track.cells(np.stack([wx, wy], axis=-1))
        image = self.track.grid_rgb[rows, cols]
        image[:, self.haze] = HAZE_RGB
        image[:, self.sky] = SKY_RGB
        return image.reshape(len(x_m), *self.shape)
