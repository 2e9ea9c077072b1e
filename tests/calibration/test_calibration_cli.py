"""The calibrate command line: time offset from CSV files, hand-eye from JSON detections, the errors."""

from __future__ import annotations

import json

import numpy as np
import yaml
from calibration_scenes import TRUE_CAMERA, hand_eye_truth, hand_eye_views, recordings

from calibration.camera_info import write_camera_info
from calibration.cli import main
from calibration.poses import pose_error


def write_csv(path, t_s, positions, header=True):
    rows = np.column_stack([t_s, positions])
    path.write_text(("t_s,x_m,y_m,z_m\n" if header else "") + "\n".join(",".join(f"{v:.6f}" for v in r) for r in rows))


def test_time_offset_from_csv_files(tmp_path, capsys):
    camera_t_s, camera_positions, robot_t_s, robot_positions = recordings(0.040, seed=0)
    write_csv(tmp_path / "camera.csv", camera_t_s, camera_positions)
    write_csv(tmp_path / "robot.csv", robot_t_s, robot_positions, header=False)
    assert main(["time-offset", str(tmp_path / "camera.csv"), str(tmp_path / "robot.csv")]) == 0
    out = capsys.readouterr().out
    offset_ms = float(out.split("offset_ms")[1].split()[0])
    assert abs(offset_ms - 40.0) <= 5.0 and "warning" not in out


def test_errors_are_one_sentence_and_exit_code_2(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    assert main(["intrinsics", str(tmp_path / "photos"), "--board", "9x6", "--square-mm", "25"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {tmp_path / 'photos'} holds no .png/.jpg/.jpeg/.bmp/.tif/.tiff "
                                               "images; point at the photo folder.")
    assert main(["intrinsics", str(tmp_path), "--board", "9by6", "--square-mm", "25"]) == 2
    assert "give inner corners like 9x6" in capsys.readouterr().err
    assert main(["hand-eye", str(tmp_path / "poses.json"), "x.png", "--mode", "eye-in-hand",
                 "--camera", str(tmp_path / "none.yaml")]) == 2
    assert "no such camera file; run `calibrate intrinsics` to make one." in capsys.readouterr().err
    (tmp_path / "camera.csv").write_text("t_s,x\n0,oops\n")
    assert main(["time-offset", str(tmp_path / "camera.csv"), str(tmp_path / "camera.csv")]) == 2
    assert "expected comma-separated numbers" in capsys.readouterr().err


def test_hand_eye_from_json_detections(tmp_path, capsys):
    base_T_grippers, _, detections = hand_eye_views("eye-to-hand", 0.0, seed=4)
    names = [f"view_{i:03d}" for i in range(len(detections))]
    (tmp_path / "poses.json").write_text(json.dumps(
        {"views": [{"name": n, "base_T_gripper": p.tolist()} for n, p in zip(names, base_T_grippers)]}))
    for name, detection in zip(names, detections):
        (tmp_path / f"{name}.json").write_text(json.dumps({"object_points": detection.object_points.tolist(),
                                                           "image_points": detection.image_points.tolist()}))
    write_camera_info(TRUE_CAMERA, tmp_path / "camera.yaml")
    out = tmp_path / "hand_eye.yaml"
    assert main(["hand-eye", str(tmp_path / "poses.json"), *(str(tmp_path / f"{n}.json") for n in names),
                 "--mode", "eye-to-hand", "--camera", str(tmp_path / "camera.yaml"), "--out", str(out)]) == 0
    answer = np.array(yaml.safe_load(out.read_text())["base_T_camera"])
    translation_mm, rotation_deg = pose_error(answer, hand_eye_truth("eye-to-hand"))
    assert translation_mm <= 2.0 and rotation_deg <= 0.2  # the brief's noise-free bounds
    assert "quaternion_xyzw" in capsys.readouterr().out
