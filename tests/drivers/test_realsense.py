"""RealSense code paths against librealsense itself: a software device fed synthetic frames with known
stamps, and a .db3 recording made from it and replayed through the same pipeline as a live camera.

librealsense 2.59 no longer lists software devices added to a context (`query_devices()` stays empty,
upstream issue #13819), so the live software device is read through its sensors, and the pipeline
path (device selection, playback, depth scale, alignment) is exercised on the recording.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

rs = pytest.importorskip("pyrealsense2", reason="pyrealsense2 is not installed (pip install pyrealsense2)")

from realsense_synthetic import DEPTH_UNITS_M, FX, H, SERIAL, W, SyntheticRealSense, color_image, framesets  # noqa: E402

from drivers.cameras.realsense import RealSenseCamera, RealSenseFrames  # noqa: E402
from drivers.errors import DeviceError, DeviceNotFoundError  # noqa: E402

PERIOD_MS = 1000.0 / 30


def test_software_device_hardware_clock_to_host_time():
    device = SyntheticRealSense(rs)
    frames = RealSenseFrames(depth_scale_m=DEPTH_UNITS_M)
    t0_ms = 5_000.0  # the camera's own counter, unrelated to the host clock
    converted, pushed = [], []
    for frameset, arrival_ns, push_ns in framesets(device, 12, rs.timestamp_domain.hardware_clock, lambda i: t0_ms + i * PERIOD_MS):
        frame = frames.convert(frameset, arrival_ns)
        converted.append(frame)
        pushed.append(push_ns)
    i = 5
    assert np.array_equal(converted[i].color, color_image(i))  # RGB order, no copy of a stale buffer
    assert converted[i].depth_m.shape == (H, W) and converted[i].intrinsics.fx == FX
    # aligned to colour: the wall at 1.05 m survives the 15 mm baseline except for a border column
    valid = converted[i].depth_m > 0
    assert valid.mean() > 0.95 and np.allclose(converted[i].depth_m[valid], 1.05, atol=1e-3)
    stamps = np.array([f.stamp_ns for f in converted])
    assert np.all(np.diff(stamps) > 0)
    # The offset estimate only tightens (min of arrival - sensor), so after the first frames the
    # host stamps keep the sensor's exact 33.3 ms spacing; measured error vs. push time < 1 ms.
    assert np.allclose(np.diff(stamps[4:]) / 1e6, PERIOD_MS, atol=1.0)
    error_ms = np.abs(stamps - np.array(pushed)) / 1e6
    print(f"\nhardware clock -> host: offset {frames.clock.offset_ns/1e6:.1f} ms, stamp error vs push max {error_ms.max():.2f} ms")
    assert error_ms[4:].max() < 5.0


def test_software_device_global_time_domain():
    device = SyntheticRealSense(rs)
    frames = RealSenseFrames(depth_scale_m=DEPTH_UNITS_M)
    for frameset, arrival_ns, push_ns in framesets(device, 4, rs.timestamp_domain.global_time, lambda i: time.time() * 1e3):
        frame = frames.convert(frameset, arrival_ns)
        # librealsense's global time is host wall-clock ms: lands on the monotonic clock at push time
        assert abs(frame.stamp_ns - push_ns) < 2e6


def record(path, count: int) -> None:
    device = SyntheticRealSense(rs)
    recorder = rs.recorder(str(path), device.device)
    sensors = recorder.query_sensors()
    queue = rs.frame_queue(100)
    for sensor in sensors:
        sensor.open(sensor.get_stream_profiles()[0])
        sensor.start(queue)
    for i in range(count):
        device.push(i, 1000.0 + i * PERIOD_MS, rs.timestamp_domain.hardware_clock)
        time.sleep(0.005)
    for sensor in sensors:
        sensor.stop()
        sensor.close()
    del sensors, recorder  # the file is finalised when the recorder goes


def test_recording_replays_through_the_camera(tmp_path):
    path = tmp_path / "synthetic.db3"
    record(path, 12)
    assert path.stat().st_size > 0
    camera = RealSenseCamera(playback_path=path, playback_realtime=True)
    with camera:
        assert camera.intrinsics().fx == FX and (camera.intrinsics().width, camera.intrinsics().height) == (W, H)
        seen = []
        frame = None
        while True:
            try:
                frame = camera.read(timeout_s=2.0, newer_than=None if frame is None else frame.seq)
            except DeviceError:
                break
            seen.append(frame)
    indices = [int(f.color[0, 0, 0]) // 10 for f in seen]
    print(f"\nreplayed {len(seen)} of 12 recorded frames: indices {indices}")
    # librealsense sometimes drops the first frameset when playback starts (measured: 11 or 12 of 12 come back)
    assert len(seen) >= 10 and indices == sorted(indices) and len(set(indices)) == len(indices)
    for frame, index in zip(seen, indices):
        assert np.array_equal(frame.color, color_image(index))
        valid = frame.depth_m > 0
        # playback's syncer pairs a colour frame with the newest depth frame read so far: this one or
        # the one before (measured both); the aligned depth is that wall, scaled to metres
        depth_m = float(np.median(frame.depth_m[valid]))
        assert valid.mean() > 0.95 and min(abs(depth_m - (1.0 + 0.01 * k)) for k in (index, index - 1)) < 1e-3
    gaps_ms = np.diff([f.sensor_stamp_ns for f in seen]) / 1e6
    assert np.allclose(gaps_ms, PERIOD_MS * np.diff(indices), atol=0.01)
    assert camera.ended


def test_missing_camera_or_recording_is_one_sentence(tmp_path):
    from drivers.cameras.realsense import connected_serials

    if not connected_serials():
        with pytest.raises(DeviceNotFoundError, match="no RealSense camera found"):
            RealSenseCamera(serial=SERIAL).connect()
    with pytest.raises(DeviceNotFoundError, match="does not exist"):
        RealSenseCamera(playback_path=tmp_path / "nothing.db3").connect()
