"""Camera intrinsics, and their file: ROS ``CameraInfo`` YAML (as camera_calibration writes it).

The file is the one ``camera_calibration_parsers`` reads, so ``camera_info_manager`` and the
ROS image pipeline load it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from calibration.errors import CalibrationError

# Coefficient counts OpenCV and ROS agree on (plumb_bob = k1 k2 p1 p2 k3).
_COEFFICIENT_COUNTS = {"plumb_bob": 5, "rational_polynomial": 8}


@dataclass
class CameraInfo:
    camera_matrix: np.ndarray  # (3, 3) K, pixels
    dist_coeffs: np.ndarray  # (5,) plumb_bob k1 k2 p1 p2 k3
    image_size: tuple[int, int]  # (width, height) pixels
    camera_name: str = "camera"
    distortion_model: str = "plumb_bob"
    rectification_matrix: np.ndarray = field(default_factory=lambda: np.eye(3))
    projection_matrix: np.ndarray | None = None  # (3, 4); None: derived as ROS camera_calibration does

    def __post_init__(self) -> None:
        self.camera_matrix = np.asarray(self.camera_matrix, dtype=float).reshape(3, 3)
        self.dist_coeffs = np.asarray(self.dist_coeffs, dtype=float).ravel()
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.projection_matrix is None:
            # Mono camera_calibration: P = [K' | 0], K' = optimal new matrix with alpha 0 (only valid pixels).
            new_matrix, _ = cv2.getOptimalNewCameraMatrix(self.camera_matrix, self.dist_coeffs, self.image_size, 0.0)
            self.projection_matrix = np.hstack([new_matrix, np.zeros((3, 1))])
        self.projection_matrix = np.asarray(self.projection_matrix, dtype=float).reshape(3, 4)
        self.rectification_matrix = np.asarray(self.rectification_matrix, dtype=float).reshape(3, 3)


def write_camera_info(info: CameraInfo, path: str | Path) -> None:
    def matrix(values: np.ndarray, rows: int, cols: int) -> dict:
        return {"rows": rows, "cols": cols, "data": [float(v) for v in np.asarray(values).ravel()]}

    document = {
        "image_width": info.image_size[0],
        "image_height": info.image_size[1],
        "camera_name": info.camera_name,
        "camera_matrix": matrix(info.camera_matrix, 3, 3),
        "distortion_model": info.distortion_model,
        "distortion_coefficients": matrix(info.dist_coeffs, 1, len(info.dist_coeffs)),
        "rectification_matrix": matrix(info.rectification_matrix, 3, 3),
        "projection_matrix": matrix(info.projection_matrix, 3, 4),
    }
    # Flow style for the leaf lists only: the layout camera_calibration_parsers writes.
    Path(path).write_text(yaml.safe_dump(document, sort_keys=False, default_flow_style=None))


def read_camera_info(path: str | Path) -> CameraInfo:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such camera file; run `calibrate intrinsics` to make one.") from None
    except yaml.YAMLError as error:
        raise CalibrationError(
            f"{path}: not valid YAML ({error}); regenerate it with `calibrate intrinsics`."
        ) from None
    if not isinstance(document, dict):
        raise CalibrationError(f"{path}: not a CameraInfo mapping; regenerate it with `calibrate intrinsics`.")

    def field_value(name: str):
        if name not in document:
            raise CalibrationError(
                f"{path}: field '{name}' is missing; regenerate the file with `calibrate intrinsics`."
            )
        return document[name]

    def matrix(name: str, shape: tuple[int, int] | None) -> np.ndarray:
        entry = field_value(name)
        try:
            data = np.asarray(entry["data"], dtype=float)
            rows, cols = int(entry["rows"]), int(entry["cols"])
            if shape is not None and (rows, cols) != shape:
                raise ValueError
            return data.reshape(rows, cols)
        except (TypeError, KeyError, ValueError):
            wanted = f"{shape[0]}x{shape[1]} " if shape else ""
            raise CalibrationError(
                f"{path}: field '{name}' must be a {wanted}matrix with rows, cols and data; fix or regenerate the file."
            ) from None

    model = field_value("distortion_model")
    if model not in _COEFFICIENT_COUNTS:
        raise CalibrationError(
            f"{path}: field 'distortion_model' is {model!r}; only {', '.join(_COEFFICIENT_COUNTS)} are supported."
        )
    coefficients = matrix("distortion_coefficients", None).ravel()
    if len(coefficients) != _COEFFICIENT_COUNTS[model]:
        raise CalibrationError(
            f"{path}: field 'distortion_coefficients' has {len(coefficients)} values; {model} needs "
            f"{_COEFFICIENT_COUNTS[model]}."
        )
    return CameraInfo(
        camera_matrix=matrix("camera_matrix", (3, 3)),
        dist_coeffs=coefficients,
        image_size=(int(field_value("image_width")), int(field_value("image_height"))),
        camera_name=str(document.get("camera_name", "camera")),
        distortion_model=model,
        rectification_matrix=matrix("rectification_matrix", (3, 3)),
        projection_matrix=matrix("projection_matrix", (3, 4)),
    )
