"""Guided capture: move the arm through views of the board and record (pose, image) pairs.

Views are camera positions on a sphere cap around the board (distance, tilt from the board
normal, azimuth, roll about the optical axis), aimed near the board centre. They are turned
into gripper poses through a rough, hand-measured guess of the mount; calibration then
measures the mount exactly.

The arm and camera are anything with the small interfaces below, so a real Franka, a MuJoCo
twin or a driver from ``drivers/`` all fit.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from calibration.errors import CalibrationError
from calibration.poses import invert_pose, look_at


class PosableArm(Protocol):
    def move_to_pose(self, base_T_gripper: np.ndarray) -> None:
        """Move the gripper to a 4x4 pose in the base frame; return once there."""

    def current_pose(self) -> np.ndarray:
        """Measured 4x4 ``base_T_gripper``."""


class TimestampedCamera(Protocol):
    def read(self) -> tuple[np.ndarray, float]:
        """The newest image and its capture time in seconds."""


@dataclass
class CapturedView:
    name: str
    base_T_gripper: np.ndarray  # measured after the move, not the command
    image: np.ndarray
    stamp_s: float


def sphere_cap_views(board_center_m: np.ndarray, *, n_views: int = 20, distance_m: tuple[float, float] = (0.35, 0.6),
                     max_tilt_deg: float = 35.0, max_roll_deg: float = 30.0, aim_jitter_m: float = 0.03,
                     seed: int = 0) -> list[np.ndarray]:
    """``board_T_camera`` poses looking at the board from its front side (the board's -z side).

    Tilts are spread evenly over the cap (golden-angle spiral) so every rotation axis is
    exercised, which both intrinsics (focal length vs distance) and hand-eye need.
    """
    rng = np.random.default_rng(seed)
    center = np.asarray(board_center_m, dtype=float)
    views = []
    for i in range(n_views):
        tilt = np.radians(max_tilt_deg) * np.sqrt((i + 0.5) / n_views)
        azimuth = i * np.pi * (3.0 - np.sqrt(5.0))
        direction = np.array([np.sin(tilt) * np.cos(azimuth), np.sin(tilt) * np.sin(azimuth), -np.cos(tilt)])
        eye = center + rng.uniform(*distance_m) * direction
        aim = center + np.append(rng.uniform(-aim_jitter_m, aim_jitter_m, 2), 0.0)
        # Board -y appears upwards, then a random roll about the optical axis.
        board_T_camera = look_at(eye, aim, up_hint=np.array([0.0, -1.0, 0.0]))
        roll = np.radians(rng.uniform(-max_roll_deg, max_roll_deg))
        c, s = np.cos(roll), np.sin(roll)
        board_T_camera[:3, :3] = board_T_camera[:3, :3] @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        views.append(board_T_camera)
    return views


def eye_in_hand_poses(base_T_board: np.ndarray, gripper_T_camera_guess: np.ndarray,
                      board_T_cameras: list[np.ndarray]) -> list[np.ndarray]:
    """Gripper poses that put a gripper-mounted camera at each view of a fixed board."""
    camera_T_gripper = invert_pose(gripper_T_camera_guess)
    return [base_T_board @ board_T_camera @ camera_T_gripper for board_T_camera in board_T_cameras]


def eye_to_hand_poses(base_T_camera: np.ndarray, gripper_T_board_guess: np.ndarray,
                      board_T_cameras: list[np.ndarray]) -> list[np.ndarray]:
    """Gripper poses that show a gripper-held board to a fixed camera from each view."""
    board_T_gripper = invert_pose(gripper_T_board_guess)
    return [base_T_camera @ invert_pose(board_T_camera) @ board_T_gripper for board_T_camera in board_T_cameras]


def capture_views(arm: PosableArm, camera: TimestampedCamera, poses: list[np.ndarray], *,
                  settle_s: float = 0.5) -> list[CapturedView]:
    """Visit each pose, let vibration die down, and record the measured pose with a fresh image."""
    views = []
    for index, pose in enumerate(poses):
        arm.move_to_pose(pose)
        if settle_s > 0:
            time.sleep(settle_s)
        image, stamp_s = camera.read()
        views.append(CapturedView(f"view_{index:03d}", np.asarray(arm.current_pose(), dtype=float), image, stamp_s))
    return views


def save_capture(views: list[CapturedView], folder: str | Path) -> Path:
    """Write ``view_NNN.png`` images and ``poses.json``, the input of ``calibrate hand-eye``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for view in views:
        cv2.imwrite(str(folder / f"{view.name}.png"), view.image)
        entries.append({"name": view.name, "stamp_s": view.stamp_s, "base_T_gripper": view.base_T_gripper.tolist()})
    poses_path = folder / "poses.json"
    poses_path.write_text(json.dumps({"views": entries}, indent=1))
    return poses_path


def load_poses(path: str | Path) -> dict[str, np.ndarray]:
    """``base_T_gripper`` by view name, from a ``poses.json`` written by ``save_capture``."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())["views"]
        return {entry["name"]: np.asarray(entry["base_T_gripper"], dtype=float).reshape(4, 4) for entry in entries}
    except FileNotFoundError:
        raise CalibrationError(f"{path}: no such poses file; record one with the guided capture.") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise CalibrationError(
            f"{path}: expected {{\"views\": [{{\"name\", \"base_T_gripper\" (4x4)}}]}}; re-save it with save_capture."
        ) from None
