"""Photos of a calibration board taken by a known camera, for tests and benchmarks.

Each image pixel is traced back through the lens model (``cv2.undistortPoints`` inverts the
plumb_bob distortion exactly) to the board plane and reads the printed texture there, so
straight board edges bend exactly as the model says. Pixels are supersampled and averaged
(anti-aliasing), blurred like a real lens and given sensor noise, so corner detection has to
work sub-pixel the way it does on a real photo.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibration.board import BoardTexture
from calibration.camera_info import CameraInfo

# Iterate the undistortion to 1e-10 px: the traced rays must not bias the corners we test against.
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-10)


class BoardRenderer:
    """Renders grey images of one printed board as seen by one camera."""

    def __init__(self, texture: BoardTexture, camera: CameraInfo, *, supersample: int = 3,
                 blur_sigma_px: float = 0.5, noise_gray: float = 2.0, background_gray: int = 110) -> None:
        self.texture, self.camera = texture, camera
        self.supersample, self.blur_sigma_px = supersample, blur_sigma_px
        self.noise_gray, self.background_gray = noise_gray, background_gray
        width, height = camera.image_size
        # Subsample centres of output pixel (u, v): u - 0.5 + (k + 0.5) / s, k = 0..s-1.
        u = (np.arange(width * supersample) + 0.5) / supersample - 0.5
        v = (np.arange(height * supersample) + 0.5) / supersample - 0.5
        pixels = np.stack(np.meshgrid(u, v), axis=-1).reshape(-1, 1, 2)
        normalized = cv2.undistortPointsIter(pixels, camera.camera_matrix, camera.dist_coeffs, None, None,
                                             _UNDISTORT_CRITERIA).reshape(-1, 2)
        # Camera-frame rays (x, y, 1), kept as two contiguous columns.
        self._ray_x, self._ray_y = normalized[:, 0].copy(), normalized[:, 1].copy()

    def render(self, camera_T_board: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        width, height = self.camera.image_size
        s = self.supersample
        rotation, translation = camera_T_board[:3, :3], camera_T_board[:3, 3]
        normal = rotation[:, 2]
        ray_x, ray_y = self._ray_x, self._ray_y
        # Ray-plane intersection: the point depth * ray lies on the board when normal . (p - t) = 0.
        # Written out per axis: a BLAS matmul here spawns threads that stall a shared machine.
        with np.errstate(divide="ignore", invalid="ignore"):
            depth = (normal @ translation) / (ray_x * normal[0] + ray_y * normal[1] + normal[2])
        offset = [ray_x * depth - translation[0], ray_y * depth - translation[1], depth - translation[2]]
        scale = self.texture.pixels_per_m
        texture_u = self.texture.origin_px[0] + scale * sum(offset[i] * rotation[i, 0] for i in range(3))
        texture_v = self.texture.origin_px[1] + scale * sum(offset[i] * rotation[i, 1] for i in range(3))
        behind = ~(depth > 0)  # the plane behind the camera, or seen edge-on
        texture_u[behind] = -1e6
        texture_v[behind] = -1e6
        fine = cv2.remap(
            self.texture.image,
            texture_u.reshape(height * s, width * s).astype(np.float32),
            texture_v.reshape(height * s, width * s).astype(np.float32),
            cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=self.background_gray,
        ).astype(np.float32)
        image = cv2.resize(fine, (width, height), interpolation=cv2.INTER_AREA)
        if self.blur_sigma_px > 0:
            image = cv2.GaussianBlur(image, (0, 0), self.blur_sigma_px)
        if self.noise_gray > 0:
            rng = rng if rng is not None else np.random.default_rng()
            image = image + rng.normal(0.0, self.noise_gray, image.shape)
        return np.clip(np.round(image), 0, 255).astype(np.uint8)


def project_points(points_m: np.ndarray, camera: CameraInfo, camera_T_points: np.ndarray) -> np.ndarray:
    """Pixel positions (N, 2) of points given in a frame whose pose in the camera is known."""
    rvec, _ = cv2.Rodrigues(np.ascontiguousarray(camera_T_points[:3, :3]))
    projected, _ = cv2.projectPoints(np.asarray(points_m, dtype=np.float64), rvec, camera_T_points[:3, 3],
                                     camera.camera_matrix, camera.dist_coeffs)
    return projected.reshape(-1, 2)


def board_in_view(points_m: np.ndarray, camera: CameraInfo, camera_T_board: np.ndarray,
                  margin_px: float = 20.0) -> bool:
    """True when every board point is in front of the camera and at least margin_px inside the image."""
    in_camera = points_m @ camera_T_board[:3, :3].T + camera_T_board[:3, 3]
    if np.any(in_camera[:, 2] <= 0.05):
        return False
    pixels = project_points(points_m, camera, camera_T_board)
    width, height = camera.image_size
    return bool(np.all((pixels >= margin_px) & (pixels <= [width - 1 - margin_px, height - 1 - margin_px])))
