"""``calibrate`` commands: intrinsics, hand-eye, time-offset. ``main(argv)`` returns the exit code."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from calibration.board import BoardDetection, estimate_board_pose, parse_board
from calibration.camera_info import read_camera_info, write_camera_info
from calibration.capture import load_poses
from calibration.errors import CalibrationError
from calibration.hand_eye import MODES, calibrate_hand_eye
from calibration.hand_eye_refine import refine_hand_eye
from calibration.intrinsics import IMAGE_SUFFIXES, calibrate_intrinsics, load_images, read_image
from calibration.poses import quaternion_xyzw
from calibration.time_offset import estimate_time_offset

# Below this peak correlation the two speed signals hardly agree and the offset is a guess.
_WEAK_CORRELATION = 0.7


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CalibrationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calibrate", description="Camera intrinsics, hand-eye and time offset.")
    commands = parser.add_subparsers(dest="command", required=True)

    def board_options(command: argparse.ArgumentParser, required: bool) -> None:
        command.add_argument("--board", required=required,
                             help="inner corners COLSxROWS (9x6), or charuco:COLSxROWS squares")
        command.add_argument("--square-mm", type=float, required=required, help="printed square side, mm")
        command.add_argument("--marker-mm", type=float, help="ChArUco marker side, mm")
        command.add_argument("--dictionary", default="DICT_5X5_100", help="ChArUco ArUco dictionary")

    intrinsics = commands.add_parser("intrinsics", help="camera matrix and distortion from board photos")
    intrinsics.add_argument("images_dir", type=Path)
    board_options(intrinsics, required=True)
    intrinsics.add_argument("--out", type=Path, default=Path("camera.yaml"), help="ROS CameraInfo YAML to write")
    intrinsics.add_argument("--camera-name", default="camera")
    intrinsics.add_argument("--min-views", type=int, default=10)
    intrinsics.add_argument("--outlier-k", type=float, default=3.0, help="drop views above median + k*MAD error")
    intrinsics.set_defaults(run=_intrinsics)

    hand_eye = commands.add_parser("hand-eye", help="camera pose on the gripper or in the robot base")
    hand_eye.add_argument("poses", type=Path, help="poses.json from the guided capture")
    hand_eye.add_argument("detections", type=Path, nargs="+",
                          help="board images, or JSON files with object_points and image_points, named like the views")
    hand_eye.add_argument("--mode", choices=MODES, required=True)
    hand_eye.add_argument("--camera", type=Path, required=True, help="CameraInfo YAML of the camera")
    board_options(hand_eye, required=False)
    hand_eye.add_argument("--out", type=Path, help="YAML to write the chosen transform and every solver's figures to")
    hand_eye.set_defaults(run=_hand_eye)

    time_offset = commands.add_parser("time-offset", help="camera clock minus robot clock, from motion")
    time_offset.add_argument("camera_csv", type=Path, help="t_s then position columns, from the camera")
    time_offset.add_argument("robot_csv", type=Path, help="t_s then position columns, from the robot")
    time_offset.add_argument("--max-offset-ms", type=float, default=500.0)
    time_offset.add_argument("--grid-hz", type=float, default=200.0)
    time_offset.set_defaults(run=_time_offset)
    return parser


def _intrinsics(args: argparse.Namespace) -> int:
    board = parse_board(args.board, args.square_mm, args.marker_mm, args.dictionary)
    result = calibrate_intrinsics(load_images(args.images_dir), board, camera_name=args.camera_name,
                                  min_views=args.min_views, outlier_k=args.outlier_k)
    write_camera_info(result.camera, args.out)
    k = result.camera.camera_matrix
    print(f"views: {len(result.view_names)} used, {len(result.rejected)} dropped as outliers, "
          f"{len(result.not_found)} without a board")
    for name, error in result.rejected.items():
        print(f"  dropped {name}: {error:.2f} px")
    print(f"fx {k[0, 0]:.2f}  fy {k[1, 1]:.2f}  cx {k[0, 2]:.2f}  cy {k[1, 2]:.2f}  "
          f"dist {np.array2string(result.camera.dist_coeffs, precision=4)}")
    print(f"reprojection: RMS {result.rms_px:.3f} px, worst view {max(result.view_errors_px):.3f} px")
    print(f"wrote {args.out}")
    return 0


def _hand_eye(args: argparse.Namespace) -> int:
    camera = read_camera_info(args.camera)
    poses = load_poses(args.poses)
    board = parse_board(args.board, args.square_mm, args.marker_mm, args.dictionary) if args.board else None
    base_T_grippers, camera_T_boards, detections = [], [], []
    for path in args.detections:
        if path.stem not in poses:
            raise CalibrationError(f"{path.name} has no pose named {path.stem!r} in {args.poses}; "
                                   "name each detection after its view.")
        detection = _load_detection(path, board)
        if detection is None:
            print(f"  {path.name}: no board found, skipped")
            continue
        camera_T_board, _ = estimate_board_pose(detection, camera.camera_matrix, camera.dist_coeffs)
        base_T_grippers.append(poses[path.stem])
        camera_T_boards.append(camera_T_board)
        detections.append(detection)
    if not detections:
        raise CalibrationError("the board was found in none of the images; check --board and --square-mm.")
    # ChArUco views may see different corners; score every solver on the full board outline.
    board_points = board.object_points() if board is not None else detections[0].object_points
    result = calibrate_hand_eye(base_T_grippers, camera_T_boards, args.mode, board_points)
    refined, rms_px = refine_hand_eye(result, base_T_grippers, detections, camera, board_points)
    frame = "gripper_T_camera" if args.mode == "eye-in-hand" else "base_T_camera"
    print(f"{len(camera_T_boards)} views, {args.mode}; spread of the implied board pose per solver:")
    for solution in [refined, *result.solutions]:
        print(f"  {solution.method:<20} corners {solution.corner_spread_mm:7.2f} mm  "
              f"origin {solution.translation_spread_mm:7.2f} mm  rotation {solution.rotation_spread_deg:6.3f} deg")
    for method, reason in result.failed.items():
        print(f"  {method:<20} failed: {reason}")
    answer = refined.camera_pose
    print(f"{frame} ({refined.method}, reprojection RMS {rms_px:.3f} px): translation_m "
          f"{np.array2string(answer[:3, 3], precision=4)}  "
          f"quaternion_xyzw {np.array2string(quaternion_xyzw(answer[:3, :3]), precision=5)}")
    if args.out:
        document = {
            "mode": args.mode, "method": refined.method, "reprojection_rms_px": rms_px, frame: answer.tolist(),
            "translation_m": answer[:3, 3].tolist(), "quaternion_xyzw": quaternion_xyzw(answer[:3, :3]).tolist(),
            "solutions": {s.method: {"corner_spread_mm": s.corner_spread_mm,
                                     "translation_spread_mm": s.translation_spread_mm,
                                     "rotation_spread_deg": s.rotation_spread_deg,
                                     frame: s.camera_pose.tolist()} for s in [refined, *result.solutions]},
        }
        args.out.write_text(yaml.safe_dump(document, sort_keys=False, default_flow_style=None))
        print(f"wrote {args.out}")
    return 0


def _load_detection(path: Path, board) -> BoardDetection | None:
    if path.suffix.lower() == ".json":
        try:
            entry = json.loads(path.read_text())
            return BoardDetection(np.asarray(entry["object_points"], dtype=np.float32).reshape(-1, 3),
                                  np.asarray(entry["image_points"], dtype=np.float32).reshape(-1, 2))
        except (OSError, KeyError, TypeError, ValueError):  # JSONDecodeError is a ValueError
            raise CalibrationError(f"{path}: expected object_points (N x 3) and image_points (N x 2); "
                                   "re-export the detection.") from None
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise CalibrationError(f"{path} is neither an image nor a .json detection; pass the capture's images.")
    if board is None:
        raise CalibrationError("detecting the board in images needs --board and --square-mm.")
    return board.detect(read_image(path))


def _time_offset(args: argparse.Namespace) -> int:
    camera_t_s, camera_positions = _load_motion_csv(args.camera_csv)
    robot_t_s, robot_positions = _load_motion_csv(args.robot_csv)
    result = estimate_time_offset(camera_t_s, camera_positions, robot_t_s, robot_positions,
                                  max_offset_ms=args.max_offset_ms, grid_hz=args.grid_hz)
    print(f"offset_ms {result.offset_ms:.2f}  (camera stamp - robot stamp; subtract from camera stamps)")
    print(f"correlation {result.correlation:.3f} over {result.overlap_s:.1f} s")
    if result.correlation < _WEAK_CORRELATION:
        print("warning: weak correlation; record again with translations at varied speeds, starts and stops.")
    return 0


def _load_motion_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        raise CalibrationError(f"{path}: cannot be read; check the path.") from None
    try:
        float(lines[0].split(",")[0])
        skip = 0
    except (IndexError, ValueError):
        skip = 1  # a header row
    try:
        table = np.loadtxt(lines[skip:], delimiter=",", ndmin=2)
    except ValueError:
        raise CalibrationError(f"{path}: expected comma-separated numbers, t_s first then positions.") from None
    if table.shape[1] < 2:
        raise CalibrationError(f"{path}: needs a time column and at least one position column.")
    return table[:, 0], table[:, 1:]
