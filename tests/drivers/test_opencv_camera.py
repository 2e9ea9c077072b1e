"""OpenCVCamera on a video file the test writes with cv2.VideoWriter (no webcam on CI)."""

from __future__ import annotations

import time

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="opencv is not installed (pip install opencv-python-headless)")

from drivers.cameras.opencv import OpenCVCamera  # noqa: E402
from drivers.errors import DeviceError, DeviceNotFoundError  # noqa: E402

W, H, FPS, COUNT = 64, 48, 30, 30


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    assert writer.isOpened()
    for i in range(COUNT):
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[..., 2] = 255  # pure red in OpenCV's BGR order
        bgr[:, : 2 * i + 2, 1] = 255  # a green bar that grows by 2 px a frame: encodes the index
        writer.write(bgr)
    writer.release()
    return path


def frame_index(color: np.ndarray) -> int:
    return int((color[H // 2, :, 1] > 128).sum()) // 2 - 1


def test_frames_arrive_in_order_as_rgb(video):
    with OpenCVCamera(str(video), realtime=True) as camera:
        frames = []
        frame = camera.read(timeout_s=2.0)
        frames.append(frame)
        while len(frames) < 10:
            frame = camera.read(timeout_s=2.0, newer_than=frame.seq)
            frames.append(frame)
    first = frames[0]
    assert first.color.shape == (H, W, 3) and first.color.dtype == np.uint8
    assert first.color[0, -1, 0] > 240 and first.color[0, -1, 2] < 15  # red stays red: BGR -> RGB
    indices = [frame_index(f.color) for f in frames]
    assert indices == sorted(indices) and [f.seq for f in frames] == sorted(f.seq for f in frames)
    # played at the file's 30 fps on the host clock (media time + start), so stamps step by 33.3 ms a frame
    stamps_ms = np.array([f.stamp_ns for f in frames]) / 1e6
    assert np.allclose(np.diff(stamps_ms) / np.diff(indices), 1000 / FPS, atol=0.5)
    assert not first.intrinsics.calibrated and first.intrinsics.width == W


def test_read_returns_the_newest_frame(video):
    with OpenCVCamera(str(video), realtime=True) as camera:
        first = camera.read(timeout_s=2.0)
        time.sleep(0.25)  # about 7 frames at 30 fps go by unread
        newest = camera.read()
        assert newest.seq >= first.seq + 5
        assert camera.frames_dropped >= 4
        assert frame_index(newest.color) >= frame_index(first.color) + 5


def test_end_of_file_and_loop(video):
    with OpenCVCamera(str(video), realtime=False) as camera:
        time.sleep(0.3)
        assert camera.ended
        last = camera.read()  # the newest frame stays readable...
        assert frame_index(last.color) == COUNT - 1
        with pytest.raises(DeviceError, match="no more frames"):
            camera.read(newer_than=last.seq)  # ...but nothing newer comes
    with OpenCVCamera(str(video), realtime=False, loop=True) as camera:
        time.sleep(0.3)
        assert not camera.ended and camera.frames_captured > COUNT


def test_missing_sources_are_one_sentence(tmp_path):
    with pytest.raises(DeviceNotFoundError, match="does not exist"):
        OpenCVCamera(str(tmp_path / "none.avi")).connect()
    with pytest.raises(DeviceNotFoundError, match="no V4L2 device at /dev/video99"):
        OpenCVCamera("/dev/video99").connect()
