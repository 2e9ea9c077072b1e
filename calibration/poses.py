"""Rigid poses as 4x4 matrices.

Convention: ``a_T_b`` is the pose of frame b in frame a; it maps points from b to a
(``p_a = a_T_b @ p_b``), so ``a_T_c = a_T_b @ b_T_c``. A robot pose is ``base_T_gripper``;
``cv2.solvePnP`` gives ``camera_T_board``.
"""

from __future__ import annotations

import cv2
import numpy as np


def make_pose(rotation: np.ndarray, translation_m: np.ndarray) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = np.asarray(translation_m, dtype=float).reshape(3)
    return pose


def invert_pose(pose: np.ndarray) -> np.ndarray:
    rotation = pose[:3, :3]
    return make_pose(rotation.T, -rotation.T @ pose[:3, 3])


def pose_from_rvec_tvec(rvec: np.ndarray, tvec_m: np.ndarray) -> np.ndarray:
    rotation, _ = cv2.Rodrigues(np.asarray(rvec, dtype=float).reshape(3, 1))
    return make_pose(rotation, tvec_m)


def rvec_tvec_from_pose(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rvec, _ = cv2.Rodrigues(np.ascontiguousarray(pose[:3, :3]))
    return rvec.reshape(3), pose[:3, 3].copy()


def rotation_about(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=float)
    rotation, _ = cv2.Rodrigues((axis / np.linalg.norm(axis) * angle_rad).reshape(3, 1))
    return rotation


def rotation_angle_deg(rotation: np.ndarray) -> float:
    """Angle of a rotation matrix (or of the difference ``R_a.T @ R_b``), in degrees."""
    cos_angle = (np.trace(rotation) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cos_angle, -1.0, 1.0))))


def pose_error(estimate: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(translation error mm, rotation error deg) between two poses."""
    return (1000.0 * float(np.linalg.norm(estimate[:3, 3] - truth[:3, 3])),
            rotation_angle_deg(estimate[:3, :3].T @ truth[:3, :3]))


def mean_rotation(rotations: np.ndarray) -> np.ndarray:
    """Chordal L2 mean: the rotation nearest (Frobenius) to the arithmetic mean matrix."""
    u, _, vt = np.linalg.svd(np.mean(rotations, axis=0))
    return u @ np.diag([1.0, 1.0, np.linalg.det(u @ vt)]) @ vt


def look_at(eye_m: np.ndarray, target_m: np.ndarray, up_hint: np.ndarray) -> np.ndarray:
    """``frame_T_camera`` for an OpenCV camera (z forward, y down) at eye looking at target.

    ``up_hint`` is the direction that appears upwards in the image.
    """
    z_axis = np.asarray(target_m, float) - np.asarray(eye_m, float)
    z_axis /= np.linalg.norm(z_axis)
    x_axis = np.cross(z_axis, np.asarray(up_hint, float))
    if np.linalg.norm(x_axis) < 1e-9:  # up hint along the view direction: any perpendicular will do
        x_axis = np.cross(z_axis, [1.0, 0.0, 0.0] if abs(z_axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    return make_pose(np.column_stack([x_axis, y_axis, z_axis]), eye_m)


def quaternion_xyzw(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a rotation matrix, w >= 0 (the ROS / tf2 order)."""
    m = rotation
    trace = np.trace(m)
    # Shepperd: divide by the largest of the four candidates, stable near 180 degrees.
    if trace > max(m[0, 0], m[1, 1], m[2, 2]):
        s = 2.0 * np.sqrt(1.0 + trace)
        quaternion = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1], 0.25 * s * s]) / s
    elif m[0, 0] >= m[1, 1] and m[0, 0] >= m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        quaternion = np.array([0.25 * s * s, m[0, 1] + m[1, 0], m[0, 2] + m[2, 0], m[2, 1] - m[1, 2]]) / s
    elif m[1, 1] >= m[2, 2]:
        s = 2.0 * np.sqrt(1.0 - m[0, 0] + m[1, 1] - m[2, 2])
        quaternion = np.array([m[0, 1] + m[1, 0], 0.25 * s * s, m[1, 2] + m[2, 1], m[0, 2] - m[2, 0]]) / s
    else:
        s = 2.0 * np.sqrt(1.0 - m[0, 0] - m[1, 1] + m[2, 2])
        quaternion = np.array([m[0, 2] + m[2, 0], m[1, 2] + m[2, 1], 0.25 * s * s, m[1, 0] - m[0, 1]]) / s
    quaternion /= np.linalg.norm(quaternion)
    return -quaternion if quaternion[3] < 0 else quaternion
