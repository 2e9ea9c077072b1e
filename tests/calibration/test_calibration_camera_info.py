"""ROS CameraInfo YAML: written as camera_calibration writes it, read back unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from calibration_scenes import TRUE_CAMERA

from calibration.camera_info import CameraInfo, read_camera_info, write_camera_info
from calibration.errors import CalibrationError


def test_round_trip_keeps_every_field(tmp_path):
    path = tmp_path / "camera.yaml"
    info = CameraInfo(TRUE_CAMERA.camera_matrix, TRUE_CAMERA.dist_coeffs, (640, 480), camera_name="wrist")
    write_camera_info(info, path)
    back = read_camera_info(path)
    assert back.camera_name == "wrist" and back.image_size == (640, 480) and back.distortion_model == "plumb_bob"
    for name in ("camera_matrix", "dist_coeffs", "rectification_matrix", "projection_matrix"):
        assert np.array_equal(getattr(back, name), getattr(info, name)), name


def test_file_has_the_ros_layout(tmp_path):
    path = tmp_path / "camera.yaml"
    write_camera_info(TRUE_CAMERA, path)
    document = yaml.safe_load(path.read_text())
    assert list(document) == ["image_width", "image_height", "camera_name", "camera_matrix", "distortion_model",
                              "distortion_coefficients", "rectification_matrix", "projection_matrix"]
    assert document["camera_matrix"]["rows"] == 3 and document["camera_matrix"]["cols"] == 3
    assert document["distortion_coefficients"] == {"rows": 1, "cols": 5, "data": list(TRUE_CAMERA.dist_coeffs)}
    assert document["rectification_matrix"]["data"] == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
    projection = np.reshape(document["projection_matrix"]["data"], (3, 4))
    # Mono camera_calibration: P = [K' | 0] with K' close to K (alpha 0 crops to valid pixels only).
    assert np.array_equal(projection[:, 3], np.zeros(3))
    assert np.allclose(projection[:, :3], TRUE_CAMERA.camera_matrix, rtol=0.15)
    assert "data: [" in path.read_text()  # flow-style leaf lists, as the ROS parsers write them


def test_reads_a_file_written_by_ros_camera_calibration(tmp_path):
    path = tmp_path / "ost.yaml"
    # Verbatim layout of the file camera_calibration's "save" produces.
    path.write_text("""image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [629.1, 0.0, 319.2, 0.0, 628.4, 241.5, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [-0.0313, 0.0723, 0.0012, -0.0005, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
projection_matrix:
  rows: 3
  cols: 4
  data: [630.6, 0.0, 318.8, 0.0, 0.0, 630.9, 241.7, 0.0, 0.0, 0.0, 1.0, 0.0]
""")
    info = read_camera_info(path)
    assert info.camera_matrix[0, 0] == 629.1 and info.projection_matrix[1, 1] == 630.9
    assert info.dist_coeffs.shape == (5,) and info.camera_name == "narrow_stereo"


@pytest.mark.parametrize("breakage, message", [
    (lambda d: d.pop("camera_matrix"), "field 'camera_matrix' is missing"),
    (lambda d: d["camera_matrix"].update(rows=2), "field 'camera_matrix' must be a 3x3 matrix"),
    (lambda d: d.update(distortion_model="equidistant"), "field 'distortion_model' is 'equidistant'"),
    (lambda d: d["distortion_coefficients"].update(cols=4, data=[0.0] * 4), "has 4 values; plumb_bob needs 5"),
])
def test_a_broken_file_names_the_field(tmp_path, breakage, message):
    path = tmp_path / "camera.yaml"
    write_camera_info(TRUE_CAMERA, path)
    document = yaml.safe_load(path.read_text())
    breakage(document)
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(CalibrationError, match=message) as error:
        read_camera_info(path)
    assert str(path) in str(error.value)
