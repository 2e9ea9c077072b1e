"""Camera intrinsics from photos of a board: detect, calibrate, drop inconsistent views, recalibrate.

A view is dropped when its RMS reprojection error is above median + k * MAD of all views
(MAD scaled to a standard deviation), and above an absolute floor (a quarter pixel: views
better than that are good whatever their neighbours do) so that a set of uniformly excellent
views is not thinned for nothing. Blurred, rolling-shutter or mis-detected frames
are the usual culprits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from calibration.board import Board, BoardDetection
from calibration.camera_info import CameraInfo
from calibration.errors import CalibrationError
from calibration.poses import pose_from_rvec_tvec

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# Levenberg-Marquardt stops after 100 iterations or a 1e-9 relative step: converged on every set we tried.
_CALIBRATE_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-9)


@dataclass
class IntrinsicsResult:
    camera: CameraInfo
    rms_px: float  # over all points of the kept views
    view_names: list[str]  # kept views, in order
    view_errors_px: list[float]  # RMS reprojection error of each kept view
    rejected: dict[str, float] = field(default_factory=dict)  # dropped view -> its error when dropped
    not_found: list[str] = field(default_factory=list)  # images where the board was not found
    camera_T_boards: list[np.ndarray] = field(default_factory=list)  # per kept view

    @property
    def mean_view_error_px(self) -> float:
        return float(np.mean(self.view_errors_px))


def load_images(folder: str | Path) -> dict[str, np.ndarray]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"{folder} is not a folder; give the folder that holds the board photos.")
    images = {path.name: read_image(path)
              for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)}
    if not images:
        raise CalibrationError(f"{folder} holds no {'/'.join(IMAGE_SUFFIXES)} images; point at the photo folder.")
    return images


def read_image(path: str | Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise CalibrationError(f"{path} could not be read as an image; check the path, or remove or re-save the file.")
    return image


def calibrate_intrinsics(images: dict[str, np.ndarray], board: Board, *, camera_name: str = "camera",
                         min_views: int = 10, outlier_k: float = 3.0, outlier_floor_px: float = 0.25,
                         max_rounds: int = 3) -> IntrinsicsResult:
    """Calibrate from named images of one camera; see ``calibrate_from_detections``."""
    sizes = {image.shape[:2] for image in images.values()}
    if len(sizes) != 1:
        raise CalibrationError(f"the images have {len(sizes)} different sizes; use photos from one camera mode only.")
    height, width = sizes.pop()
    detections, not_found = {}, []
    for name, image in images.items():
        detection = board.detect(image)
        if detection is None:
            not_found.append(name)
        else:
            detections[name] = detection
    if len(detections) < min_views:
        raise CalibrationError(
            f"found the board in {len(detections)} of {len(images)} images; need ≥ {min_views} — "
            "check the board size (inner corners) and lighting."
        )
    result = calibrate_from_detections(detections, (width, height), camera_name=camera_name, min_views=min_views,
                                       outlier_k=outlier_k, outlier_floor_px=outlier_floor_px, max_rounds=max_rounds)
    result.not_found = not_found
    return result


def calibrate_from_detections(detections: dict[str, BoardDetection], image_size: tuple[int, int], *,
                              camera_name: str = "camera", min_views: int = 10, outlier_k: float = 3.0,
                              outlier_floor_px: float = 0.25, max_rounds: int = 3) -> IntrinsicsResult:
    """``cv2.calibrateCamera`` (plumb_bob), then up to ``max_rounds`` times drop outlier views and recalibrate."""
    kept = dict(detections)
    rejected: dict[str, float] = {}
    for round_index in range(max_rounds + 1):
        camera, rms_px, errors_px, camera_T_boards = _calibrate(kept, image_size, camera_name)
        if round_index == max_rounds:
            break
        median = float(np.median(errors_px))
        mad = 1.4826 * float(np.median(np.abs(errors_px - median)))  # scaled to a Gaussian sigma
        threshold = max(median + outlier_k * mad, outlier_floor_px)
        outliers = {name: float(error) for name, error in zip(kept, errors_px) if error > threshold}
        if not outliers or len(kept) - len(outliers) < min_views:
            break
        rejected.update(outliers)
        kept = {name: detection for name, detection in kept.items() if name not in outliers}
    return IntrinsicsResult(camera, rms_px, list(kept), [float(e) for e in errors_px], rejected,
                            camera_T_boards=camera_T_boards)


def _calibrate(detections: dict[str, BoardDetection], image_size: tuple[int, int], camera_name: str):
    object_points = [d.object_points for d in detections.values()]
    image_points = [d.image_points.reshape(-1, 1, 2) for d in detections.values()]
    rms_px, camera_matrix, dist_coeffs, rvecs, tvecs = cv2.calibrateCamera(
        object_points, image_points, image_size, None, None, criteria=_CALIBRATE_CRITERIA
    )
    errors_px, camera_T_boards = [], []
    for points, pixels, rvec, tvec in zip(object_points, image_points, rvecs, tvecs):
        projected, _ = cv2.projectPoints(points, rvec, tvec, camera_matrix, dist_coeffs)
        errors_px.append(np.sqrt(np.mean(np.sum((projected - pixels).reshape(-1, 2) ** 2, axis=1))))
        camera_T_boards.append(pose_from_rvec_tvec(rvec, tvec))
    camera = CameraInfo(camera_matrix, dist_coeffs.ravel()[:5], image_size, camera_name)
    return camera, float(rms_px), np.asarray(errors_px), camera_T_boards
