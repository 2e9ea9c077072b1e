"""Camera-to-robot clock offset recovered from the same motion seen by both, on different clocks."""

from __future__ import annotations

import pytest
from calibration_scenes import gripper_path_m, recordings

from calibration.errors import CalibrationError
from calibration.time_offset import estimate_time_offset


@pytest.mark.parametrize("seed", range(4))
def test_a_40_ms_offset_is_recovered(seed):
    result = estimate_time_offset(*recordings(0.040, seed))
    print(f"seed {seed}: offset {result.offset_ms:.2f} ms, correlation {result.correlation:.3f}")
    # ±5 ms is the brief's bound; measured within 0.5 ms of 40 ms over these seeds.
    assert abs(result.offset_ms - 40.0) <= 5.0
    assert result.correlation > 0.95 and result.overlap_s > 15.0


def test_a_camera_clock_behind_the_robot_gives_a_negative_offset():
    result = estimate_time_offset(*recordings(-0.1234, seed=5, camera_hz=15.0, robot_hz=100.0))
    assert abs(result.offset_ms + 123.4) <= 5.0


def test_sub_grid_offsets_are_interpolated():
    # 2.5 ms lies half-way between 5 ms grid points: without the parabola it reads 0 or 5.
    result = estimate_time_offset(*recordings(0.0025, seed=6, camera_noise_m=0.0002))
    assert abs(result.offset_ms - 2.5) <= 1.0


def test_unrelated_motion_has_low_correlation():
    camera_t_s, camera_positions, robot_t_s, _ = recordings(0.040, seed=1)
    other_robot = gripper_path_m(robot_t_s, seed=99)
    result = estimate_time_offset(camera_t_s, camera_positions, robot_t_s, other_robot)
    assert result.correlation < 0.6  # measured 0.2-0.4 for unrelated paths; related ones exceed 0.95


def test_an_offset_beyond_the_window_is_reported():
    with pytest.raises(CalibrationError, match="edge of the ±100 ms search window; widen --max-offset-ms"):
        estimate_time_offset(*recordings(0.3, seed=2), max_offset_ms=100.0)


def test_recordings_that_do_not_overlap_are_reported():
    camera_t_s, camera_positions, robot_t_s, robot_positions = recordings(0.0, seed=3)
    with pytest.raises(CalibrationError, match="record both during the same motion"):
        estimate_time_offset(camera_t_s + 60.0, camera_positions, robot_t_s, robot_positions)
