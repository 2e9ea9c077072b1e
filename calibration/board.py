"""Calibration targets: their geometry, their printed image, finding them in a photo, their pose.

A checkerboard is named by its inner corners (a board of 10x7 squares is ``9x6``). Its frame
has the origin at the first inner corner, x along a row, y along a column, z into the board.
Pick a board whose inner-corner counts are one odd and one even (9x6, 7x4): only then does
the corner order, and so the board frame, stay the same from view to view, which hand-eye
calibration needs. A ChArUco board (OpenCV's frame: origin at the top-left outer corner)
is unambiguous and may be partly hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np

from calibration.errors import CalibrationError
from calibration.poses import pose_from_rvec_tvec

# cornerSubPix stops after 40 iterations or a 0.001 px step: past this no change is measurable.
_SUBPIX_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-3)


@dataclass
class BoardDetection:
    """Board points found in one image: where they are on the board and where in the image."""

    object_points: np.ndarray  # (N, 3) float32, metres, board frame
    image_points: np.ndarray  # (N, 2) float32, pixels


@dataclass
class BoardTexture:
    """The board as printed: a grey image and where the board frame lies on it."""

    image: np.ndarray  # (H, W) uint8
    pixels_per_m: float
    origin_px: tuple[float, float]  # texture pixel (centre convention) of the board-frame origin


@dataclass(frozen=True)
class Checkerboard:
    inner_corners: tuple[int, int]  # (columns, rows) of inner corners
    square_m: float

    def object_points(self) -> np.ndarray:
        cols, rows = self.inner_corners
        grid = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * self.square_m
        return np.hstack([grid, np.zeros((len(grid), 1))]).astype(np.float32)

    def detect(self, image: np.ndarray) -> BoardDetection | None:
        gray = _to_gray(image)
        flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK
        found, corners = cv2.findChessboardCorners(gray, self.inner_corners, flags=flags)
        if found:
            half_window = int(np.clip(0.4 * _min_corner_spacing_px(corners, self.inner_corners), 2, 11))
            corners = cv2.cornerSubPix(gray, corners, (half_window, half_window), (-1, -1), _SUBPIX_CRITERIA)
        else:
            # The sector-based detector copes with blur and uneven light; it is sub-pixel already.
            found, corners = cv2.findChessboardCornersSB(
                gray, self.inner_corners, flags=cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_EXHAUSTIVE
            )
            if not found:
                return None
        corners = self._canonical_order(gray, corners.reshape(-1, 2))
        return BoardDetection(self.object_points(), corners.astype(np.float32))

    def _canonical_order(self, gray: np.ndarray, corners: np.ndarray) -> np.ndarray:
        """Start the corner list at the end whose outer diagonal square is dark (as printed)."""
        cols, rows = self.inner_corners
        if (cols + rows) % 2 == 0:
            return corners  # both ends look alike: the order cannot be told apart
        first = _outer_square_gray(gray, corners[0], corners[1], corners[cols])
        last = _outer_square_gray(gray, corners[-1], corners[-2], corners[-1 - cols])
        if first is not None and last is not None and first > last:
            return corners[::-1].copy()
        return corners

    def texture(self, pixels_per_square: int = 100, margin_squares: float = 0.75) -> BoardTexture:
        cols, rows = self.inner_corners
        margin_px = int(round(margin_squares * pixels_per_square))
        squares = np.indices((rows + 1, cols + 1)).sum(axis=0) % 2  # 0 = dark, at the origin's outer square
        pattern = np.kron(squares, np.ones((pixels_per_square, pixels_per_square))) * 255
        image = np.pad(pattern.astype(np.uint8), margin_px, constant_values=255)
        origin = margin_px + pixels_per_square - 0.5
        return BoardTexture(image, pixels_per_square / self.square_m, (origin, origin))


@dataclass(frozen=True)
class CharucoBoard:
    squares: tuple[int, int]  # (columns, rows) of squares
    square_m: float
    marker_m: float
    dictionary: str = "DICT_5X5_100"
    min_corners: int = 6  # fewer than this and the pose of a partly seen board is poorly fixed

    def _cv_board(self):
        try:
            dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        except AttributeError:
            raise CalibrationError(
                f"unknown ArUco dictionary {self.dictionary!r}; use a cv2.aruco name such as DICT_5X5_100."
            ) from None
        return cv2.aruco.CharucoBoard(self.squares, self.square_m, self.marker_m, dictionary)

    def object_points(self) -> np.ndarray:
        return np.asarray(self._cv_board().getChessboardCorners(), dtype=np.float32)

    def detect(self, image: np.ndarray) -> BoardDetection | None:
        board = self._cv_board()
        corners, ids, _, _ = cv2.aruco.CharucoDetector(board).detectBoard(_to_gray(image))
        if ids is None or len(ids) < self.min_corners:
            return None
        object_points = np.asarray(board.getChessboardCorners(), dtype=np.float32)[ids.ravel()]
        return BoardDetection(object_points, corners.reshape(-1, 2).astype(np.float32))

    def texture(self, pixels_per_square: int = 100, margin_squares: float = 0.75) -> BoardTexture:
        cols, rows = self.squares
        margin_px = int(round(margin_squares * pixels_per_square))
        size = (cols * pixels_per_square + 2 * margin_px, rows * pixels_per_square + 2 * margin_px)
        image = self._cv_board().generateImage(size, marginSize=margin_px, borderBits=1)
        return BoardTexture(image, pixels_per_square / self.square_m, (margin_px - 0.5, margin_px - 0.5))


Board = Checkerboard | CharucoBoard


def parse_board(spec: str, square_mm: float, marker_mm: float | None = None,
                dictionary: str = "DICT_5X5_100") -> Board:
    """``9x6`` is a checkerboard by inner corners; ``charuco:7x5`` a ChArUco board by squares."""
    match = re.fullmatch(r"(charuco:)?(\d+)x(\d+)", spec.strip().lower())
    if match is None:
        raise CalibrationError(
            f"board {spec!r} is not COLSxROWS; give inner corners like 9x6, or charuco:7x5 for ChArUco squares."
        )
    size = (int(match.group(2)), int(match.group(3)))
    if square_mm <= 0:
        raise CalibrationError(f"square size {square_mm} mm must be positive; measure a printed square.")
    if match.group(1):
        if marker_mm is None or not 0 < marker_mm < square_mm:
            raise CalibrationError(
                "a ChArUco board needs --marker-mm, smaller than --square-mm; measure a printed marker."
            )
        return CharucoBoard(size, square_mm / 1000.0, marker_mm / 1000.0, dictionary)
    if min(size) < 2:
        raise CalibrationError(
            f"board {spec!r} has fewer than 2 inner corners a side; count inner corners, not squares."
        )
    return Checkerboard(size, square_mm / 1000.0)


def estimate_board_pose(detection: BoardDetection, camera_matrix: np.ndarray,
                        dist_coeffs: np.ndarray) -> tuple[np.ndarray, float]:
    """``camera_T_board`` from one detection, and its RMS reprojection error in pixels."""
    object_points, image_points = detection.object_points, detection.image_points
    # IPPE is the closed form for a plane; LM then polishes it on all points.
    ok, rvec, tvec = cv2.solvePnP(object_points, image_points, camera_matrix, dist_coeffs, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError("could not solve the board pose; check the camera intrinsics and the board size.")
    rvec, tvec = cv2.solvePnPRefineLM(object_points, image_points, camera_matrix, dist_coeffs, rvec, tvec)
    projected, _ = cv2.projectPoints(object_points, rvec, tvec, camera_matrix, dist_coeffs)
    rms_px = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - image_points) ** 2, axis=1))))
    return pose_from_rvec_tvec(rvec, tvec), rms_px


def _to_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY if image.shape[2] == 3 else cv2.COLOR_BGRA2GRAY)
    if image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return image


def _min_corner_spacing_px(corners: np.ndarray, inner_corners: tuple[int, int]) -> float:
    cols, rows = inner_corners
    grid = corners.reshape(rows, cols, 2)
    along_rows = np.linalg.norm(np.diff(grid, axis=1), axis=2).min()
    along_cols = np.linalg.norm(np.diff(grid, axis=0), axis=2).min()
    return float(min(along_rows, along_cols))


def _outer_square_gray(gray: np.ndarray, corner: np.ndarray, row_neighbour: np.ndarray,
                       col_neighbour: np.ndarray) -> float | None:
    """Mean grey of the square diagonally outside a board corner, or None when off the image."""
    centre = corner + 0.5 * ((corner - row_neighbour) + (corner - col_neighbour))
    half = max(1, int(0.15 * min(np.linalg.norm(corner - row_neighbour), np.linalg.norm(corner - col_neighbour))))
    x, y = int(round(centre[0])), int(round(centre[1]))
    height, width = gray.shape
    if not (half <= x < width - half and half <= y < height - half):
        return None
    return float(gray[y - half:y + half + 1, x - half:x + half + 1].mean())
