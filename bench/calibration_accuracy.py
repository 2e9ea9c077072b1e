"""Calibration accuracy on synthetic data with known answers, and how long each step takes.

- intrinsics: 18 rendered views of a 9x6 board (640x480, barrel distortion); focal-length
  error and mean per-view reprojection error, clean and with 0.5 px Gaussian noise added
  to the detected corners.
- hand-eye: 20 guided-capture views, board poses from solvePnP on projected corners with
  0.5 px noise, over SEEDS seeds per mode; error of the solver the consistency score picks,
  and after the reprojection refinement (hand_eye_refine) started from it.
- time offset: 20 s of motion, camera 30 Hz (jitter, 10 % dropped frames, 1 mm noise) vs
  robot 250 Hz, true offset 40 ms, over SEEDS seeds.
Prints one JSON line.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small shared machine: no BLAS thread pools

import json
import time

import cv2
import numpy as np

from calibration.board import BoardDetection, Checkerboard, estimate_board_pose
from calibration.camera_info import CameraInfo
from calibration.capture import eye_in_hand_poses, eye_to_hand_poses, sphere_cap_views
from calibration.hand_eye import calibrate_hand_eye
from calibration.hand_eye_refine import refine_hand_eye
from calibration.intrinsics import calibrate_from_detections, calibrate_intrinsics
from calibration.poses import invert_pose, look_at, make_pose, pose_error, rotation_about
from calibration.synthetic import BoardRenderer, board_in_view, project_points
from calibration.time_offset import estimate_time_offset

cv2.setNumThreads(1)
SEEDS = 20
NOISE_PX = 0.5
CAMERA = CameraInfo(np.array([[600.0, 0.0, 322.0], [0.0, 598.0, 238.0], [0.0, 0.0, 1.0]]),
                    np.array([-0.12, 0.08, 0.0005, -0.0003, 0.0]), (640, 480))
BOARD = Checkerboard((9, 6), 0.025)
CENTER_M = np.array([0.1, 0.0625, 0.0])


def mount(axis, angle_deg, translation_m):
    return make_pose(rotation_about(np.asarray(axis, float), np.radians(angle_deg)), translation_m)


def focal_error_pct(camera: CameraInfo) -> float:
    return 100.0 * float(np.abs(np.diag(camera.camera_matrix)[:2] / np.diag(CAMERA.camera_matrix)[:2] - 1).max())


def bench_intrinsics() -> dict:
    start = time.perf_counter()
    renderer = BoardRenderer(BOARD.texture(), CAMERA)
    poses = [invert_pose(p) for p in sphere_cap_views(CENTER_M, n_views=54, distance_m=(0.3, 0.5), max_tilt_deg=45.0,
                                                       aim_jitter_m=0.08, seed=7)]
    poses = [p for p in poses if board_in_view(BOARD.object_points(), CAMERA, p, 15.0)][:18]
    rng = np.random.default_rng(0)
    images = {f"view_{i:02d}": renderer.render(p, rng) for i, p in enumerate(poses)}
    render_ms = 1000.0 * (time.perf_counter() - start) / len(images)
    start = time.perf_counter()
    clean = calibrate_intrinsics(images, BOARD)
    calibrate_s = time.perf_counter() - start
    detections = {name: BOARD.detect(image) for name, image in images.items()}
    noisy_detections = {
        name: BoardDetection(d.object_points, (d.image_points + rng.normal(0, NOISE_PX, d.image_points.shape)
                                               ).astype(np.float32))
        for name, d in detections.items()
    }
    noisy = calibrate_from_detections(noisy_detections, CAMERA.image_size)
    return {
        "intrinsics_views": len(clean.view_names),
        "intrinsics_focal_error_pct": round(focal_error_pct(clean.camera), 4),
        "intrinsics_mean_view_error_px": round(clean.mean_view_error_px, 4),
        "intrinsics_noise05_focal_error_pct": round(focal_error_pct(noisy.camera), 4),
        "intrinsics_noise05_mean_view_error_px": round(noisy.mean_view_error_px, 4),
        "intrinsics_render_ms_per_view": round(render_ms, 1),
        "intrinsics_detect_calibrate_s": round(calibrate_s, 3),
    }


def hand_eye_errors(mode: str, noise_px: float, seed: int) -> tuple[float, float, bool]:
    rng = np.random.default_rng(seed)
    views = sphere_cap_views(CENTER_M, n_views=20, max_tilt_deg=35.0, seed=seed)
    guess_error = mount([1.0, 1.0, 0.0], 3.0, [0.01, 0.0, 0.0])
    if mode == "eye-in-hand":
        truth = mount([0.3, -0.2, 1.0], 80.0, [0.05, -0.03, 0.08])
        base_T_board = mount([1, 0, 0], 180.0, [0.5, 0.1, 0.02])
        robot = eye_in_hand_poses(base_T_board, truth @ guess_error, views)
        boards = [invert_pose(p @ truth) @ base_T_board for p in robot]
    else:
        truth = look_at(np.array([0.9, 0.2, 0.9]), np.array([0.5, 0.0, 0.4]), np.array([0.0, 0.0, 1.0]))
        gripper_T_board = mount([0.0, 1.0, 0.0], 10.0, [-0.1, -0.06, 0.05])
        robot = eye_to_hand_poses(truth, gripper_T_board @ guess_error, views)
        boards = [invert_pose(truth) @ p @ gripper_T_board for p in robot]
    solved, detections = [], []
    for camera_T_board in boards:
        pixels = project_points(BOARD.object_points(), CAMERA, camera_T_board) + rng.normal(0, noise_px, (54, 2))
        detections.append(BoardDetection(BOARD.object_points(), pixels.astype(np.float32)))
        solved.append(estimate_board_pose(detections[-1], CAMERA.camera_matrix, CAMERA.dist_coeffs)[0])
    result = calibrate_hand_eye(robot, solved, mode, BOARD.object_points())
    translation_mm, rotation_deg = pose_error(result.best.camera_pose, truth)
    most_accurate = min(pose_error(s.camera_pose, truth)[0] for s in result.solutions)
    refined, _ = refine_hand_eye(result, robot, detections, CAMERA, BOARD.object_points())
    return (translation_mm, rotation_deg, translation_mm <= most_accurate + 1e-9,
            *pose_error(refined.camera_pose, truth))


def bench_hand_eye() -> dict:
    figures = {}
    for mode in ("eye-in-hand", "eye-to-hand"):
        key = mode.replace("-", "_")
        clean = hand_eye_errors(mode, 0.0, seed=0)  # closed-form answer, unrefined
        figures[f"hand_eye_{key}_clean_mm"] = round(clean[0], 5)
        figures[f"hand_eye_{key}_clean_deg"] = round(clean[1], 5)
        start = time.perf_counter()
        noisy = np.array([hand_eye_errors(mode, NOISE_PX, seed) for seed in range(SEEDS)])
        figures[f"hand_eye_{key}_noise05_mm_mean"] = round(float(noisy[:, 0].mean()), 3)
        figures[f"hand_eye_{key}_noise05_mm_max"] = round(float(noisy[:, 0].max()), 3)
        figures[f"hand_eye_{key}_noise05_deg_mean"] = round(float(noisy[:, 1].mean()), 4)
        figures[f"hand_eye_{key}_noise05_deg_max"] = round(float(noisy[:, 1].max()), 4)
        figures[f"hand_eye_{key}_picked_most_accurate_share"] = round(float(noisy[:, 2].mean()), 2)
        figures[f"hand_eye_{key}_noise05_refined_mm_mean"] = round(float(noisy[:, 3].mean()), 3)
        figures[f"hand_eye_{key}_noise05_refined_mm_max"] = round(float(noisy[:, 3].max()), 3)
        figures[f"hand_eye_{key}_noise05_refined_deg_mean"] = round(float(noisy[:, 4].mean()), 4)
        figures[f"hand_eye_{key}_noise05_refined_deg_max"] = round(float(noisy[:, 4].max()), 4)
        figures[f"hand_eye_{key}_solve_ms"] = round(1000.0 * (time.perf_counter() - start) / SEEDS, 1)
    return figures


def bench_time_offset() -> dict:
    errors_ms, correlations = [], []
    start = time.perf_counter()
    for seed in range(SEEDS):
        rng = np.random.default_rng(seed)
        amplitude, frequency = rng.uniform(0.02, 0.08, (3, 4)), rng.uniform(0.1, 1.2, (3, 4))
        phase = rng.uniform(0.0, 6.3, (3, 4))

        def path(t_s):
            return np.stack([np.sum(a[:, None] * np.sin(2 * np.pi * f[:, None] * t_s + p[:, None]), axis=0)
                             for a, f, p in zip(amplitude, frequency, phase)], axis=1)

        robot_t_s = np.arange(0.0, 20.0, 1 / 250) + rng.normal(0, 2e-4, 5000)
        robot = path(robot_t_s) + rng.normal(0, 1e-4, (5000, 3))
        capture_t_s = np.arange(0.5, 19.5, 1 / 30)
        capture_t_s = (capture_t_s + rng.normal(0, 1e-3, len(capture_t_s)))[rng.random(len(capture_t_s)) >= 0.1]
        camera = path(capture_t_s) @ rotation_about([1, 2, 3], 1.0).T + rng.normal(0, 1e-3, (len(capture_t_s), 3))
        result = estimate_time_offset(capture_t_s + 0.040, camera, robot_t_s, robot)
        errors_ms.append(abs(result.offset_ms - 40.0))
        correlations.append(result.correlation)
    return {
        "time_offset_error_ms_mean": round(float(np.mean(errors_ms)), 3),
        "time_offset_error_ms_max": round(float(np.max(errors_ms)), 3),
        "time_offset_correlation_min": round(float(np.min(correlations)), 4),
        "time_offset_solve_ms": round(1000.0 * (time.perf_counter() - start) / SEEDS, 1),
    }


def main() -> None:
    figures = {"bench": "calibration", "seeds": SEEDS, "detection_noise_px": NOISE_PX}
    figures.update(bench_intrinsics())
    figures.update(bench_hand_eye())
    figures.update(bench_time_offset())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
