"""Hand-eye calibration: where the camera sits relative to the robot.

Eye-in-hand (camera on the gripper, board fixed) solves ``gripper_T_camera``; eye-to-hand
(camera fixed, board held by the gripper) solves ``base_T_camera``. Both are one equation,

    robot_i @ X @ camera_T_board_i = constant board pose,

with ``robot_i = base_T_gripper`` (eye-in-hand; the constant is ``base_T_board``) or its
inverse ``gripper_T_base`` (eye-to-hand; the constant is ``gripper_T_board``). Every OpenCV
solver is run; each answer is scored by how still it makes that constant board pose across
views, and the stillest wins. All answers are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calibration.errors import CalibrationError
from calibration.poses import invert_pose, make_pose, mean_rotation, rotation_angle_deg

EYE_IN_HAND = "eye-in-hand"
EYE_TO_HAND = "eye-to-hand"
MODES = (EYE_IN_HAND, EYE_TO_HAND)

_HAND_EYE_METHODS = {
    "tsai": cv2.CALIB_HAND_EYE_TSAI,
    "park": cv2.CALIB_HAND_EYE_PARK,
    "horaud": cv2.CALIB_HAND_EYE_HORAUD,
    "andreff": cv2.CALIB_HAND_EYE_ANDREFF,
    "daniilidis": cv2.CALIB_HAND_EYE_DANIILIDIS,
}
_ROBOT_WORLD_METHODS = {"shah": cv2.CALIB_ROBOT_WORLD_HAND_EYE_SHAH, "li": cv2.CALIB_ROBOT_WORLD_HAND_EYE_LI}
METHODS = tuple(_HAND_EYE_METHODS) + tuple(_ROBOT_WORLD_METHODS)

# Below this much rotation between robot poses the rotation part of hand-eye is unobservable.
_MIN_ROTATION_SPREAD_DEG = 5.0
# Stand-in board corners (a 0.2 m square) for the corner-spread score when none are given.
_DEFAULT_BOARD_POINTS_M = np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.0, 0.2, 0.0], [0.2, 0.2, 0.0]])


@dataclass
class HandEyeSolution:
    method: str
    camera_pose: np.ndarray  # gripper_T_camera (eye-in-hand) or base_T_camera (eye-to-hand)
    board_pose: np.ndarray  # mean implied base_T_board (eye-in-hand) or gripper_T_board (eye-to-hand)
    translation_spread_mm: float  # RMS distance of the implied board origin from its mean
    rotation_spread_deg: float  # RMS angle of the implied board rotation from its mean
    corner_spread_mm: float  # RMS distance of the implied board corners from their means: the score


@dataclass
class HandEyeResult:
    mode: str
    best: HandEyeSolution
    solutions: list[HandEyeSolution]  # every solver that returned an answer, best first
    failed: dict[str, str]  # solver -> why it gave no answer


def calibrate_hand_eye(base_T_grippers: list[np.ndarray], camera_T_boards: list[np.ndarray], mode: str,
                       board_points_m: np.ndarray | None = None) -> HandEyeResult:
    """Run every solver on paired robot poses and board poses; ``board_points_m`` (board frame) sets the score."""
    if mode not in MODES:
        raise CalibrationError(f"mode {mode!r} is unknown; use {EYE_IN_HAND} (camera on the gripper) or {EYE_TO_HAND}.")
    if len(base_T_grippers) != len(camera_T_boards):
        raise CalibrationError(
            f"{len(base_T_grippers)} robot poses but {len(camera_T_boards)} board poses; pair each image with its pose."
        )
    if len(base_T_grippers) < 3:
        raise CalibrationError(f"hand-eye needs at least 3 views (10+ advised); got {len(base_T_grippers)}.")
    base_T_grippers = [np.asarray(p, dtype=float) for p in base_T_grippers]
    camera_T_boards = [np.asarray(p, dtype=float) for p in camera_T_boards]
    _check_rotation_spread(base_T_grippers)
    robot = base_T_grippers if mode == EYE_IN_HAND else [invert_pose(p) for p in base_T_grippers]

    solutions, failed = [], {}
    for method in METHODS:
        try:
            camera_pose = _solve(method, robot, camera_T_boards)
        except cv2.error as error:
            failed[method] = str(error).strip().splitlines()[-1]
            continue
        if not np.all(np.isfinite(camera_pose)):
            failed[method] = "returned NaN"
            continue
        solutions.append(score_solution(method, camera_pose, robot, camera_T_boards, board_points_m))
    if not solutions:
        raise CalibrationError(f"every hand-eye solver failed ({failed}); add views with more varied rotations.")
    solutions.sort(key=lambda s: s.corner_spread_mm)
    return HandEyeResult(mode, solutions[0], solutions, failed)


def _solve(method: str, robot: list[np.ndarray], camera_T_boards: list[np.ndarray]) -> np.ndarray:
    def split(poses):
        return [p[:3, :3] for p in poses], [p[:3, 3].reshape(3, 1) for p in poses]

    board_rotations, board_translations = split(camera_T_boards)
    if method in _HAND_EYE_METHODS:
        # calibrateHandEye's "gripper2base" is robot_i and its "cam2gripper" is X.
        robot_rotations, robot_translations = split(robot)
        rotation, translation = cv2.calibrateHandEye(robot_rotations, robot_translations, board_rotations,
                                                     board_translations, method=_HAND_EYE_METHODS[method])
        return make_pose(rotation, translation)
    # calibrateRobotWorldHandEye solves cTw wTb = cTg gTb: its "base2gripper" is robot_i^-1, its "gripper2cam" X^-1.
    robot_rotations, robot_translations = split([invert_pose(p) for p in robot])
    _, _, rotation, translation = cv2.calibrateRobotWorldHandEye(
        board_rotations, board_translations, robot_rotations, robot_translations, method=_ROBOT_WORLD_METHODS[method]
    )
    return invert_pose(make_pose(rotation, translation))


def score_solution(method: str, camera_pose: np.ndarray, robot: list[np.ndarray],
                   camera_T_boards: list[np.ndarray], board_points_m: np.ndarray | None = None) -> HandEyeSolution:
    """How still a candidate X keeps the implied board pose ``robot_i @ X @ camera_T_board_i`` across views."""
    board_points_m = _DEFAULT_BOARD_POINTS_M if board_points_m is None else np.asarray(board_points_m, dtype=float)
    boards = np.array([r @ camera_pose @ b for r, b in zip(robot, camera_T_boards)])
    rotations, translations = boards[:, :3, :3], boards[:, :3, 3]
    mean_translation = translations.mean(axis=0)
    rotation = mean_rotation(rotations)
    translation_spread = np.sqrt(np.mean(np.sum((translations - mean_translation) ** 2, axis=1)))
    angles = [rotation_angle_deg(rotation.T @ r) for r in rotations]
    corners = np.einsum("vij,pj->vpi", rotations, board_points_m) + translations[:, None, :]
    corner_spread = np.sqrt(np.mean(np.sum((corners - corners.mean(axis=0)) ** 2, axis=2)))
    return HandEyeSolution(method, camera_pose, make_pose(rotation, mean_translation),
                           1000.0 * float(translation_spread), float(np.sqrt(np.mean(np.square(angles)))),
                           1000.0 * float(corner_spread))


def _check_rotation_spread(base_T_grippers: list[np.ndarray]) -> None:
    first = base_T_grippers[0][:3, :3]
    largest = max(rotation_angle_deg(first.T @ p[:3, :3]) for p in base_T_grippers)
    if largest < _MIN_ROTATION_SPREAD_DEG:
        raise CalibrationError(
            f"the robot poses differ by at most {largest:.1f}° in rotation; hand-eye needs views tilted "
            f"by 15° or more about at least two axes."
        )
