"""OpenCV capture: V4L2 webcams (/dev/video*, or an index) and video files.

The driver queue is cut to one buffer (CAP_PROP_BUFFERSIZE=1) so a read is never seconds old. V4L2
buffer timestamps (CAP_PROP_POS_MSEC) are CLOCK_MONOTONIC on Linux UVC devices and used as the
stamp when they are; video files play at their own frame rate unless `realtime=False`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from drivers.arms.base import now_ns
from drivers.cameras.base import Camera, EndOfStream, Frame, Intrinsics
from drivers.errors import DeviceConnectionError, DeviceError, DeviceNotFoundError, require

ASSUMED_FOVY_DEG = 45.0  # typical webcam (about 60 deg horizontal at 4:3) when no calibration is given


class OpenCVCamera(Camera):
    name = "opencv camera"

    def __init__(
        self,
        source: int | str,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        intrinsics: Intrinsics | None = None,
        realtime: bool = True,
        loop: bool = False,
    ):
        super().__init__()
        self.source = source
        self.is_file = isinstance(source, (str, os.PathLike)) and not str(source).startswith("/dev/")
        self.name = f"video file {source}" if self.is_file else f"V4L2 camera {source}"
        self.width, self.height, self.fps = width, height, fps
        self._intrinsics = intrinsics
        self.realtime = realtime
        self.loop = loop
        self._cap = None
        self._file_start_ns = 0

    def _open(self) -> None:
        cv2 = require("cv2", "pip install opencv-python-headless")
        self._cv2 = cv2
        if self.is_file and not Path(self.source).is_file():
            raise DeviceNotFoundError(f"video file {self.source} does not exist; check the path.")
        if not self.is_file and isinstance(self.source, str) and not Path(self.source).exists():
            raise DeviceNotFoundError(f"no V4L2 device at {self.source}; plug the camera in, or list cameras with `robot-rl doctor`.")
        cap = cv2.VideoCapture(str(self.source), cv2.CAP_ANY) if self.is_file else cv2.VideoCapture(self.source, cv2.CAP_V4L2)
        if not cap.isOpened():
            what = "decode" if self.is_file else "open"
            raise DeviceConnectionError(f"OpenCV could not {what} {self.name}; check permissions (group 'video') and that no other program holds it.")
        if not self.is_file:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            if self.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            if self.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            if self.fps:
                cap.set(cv2.CAP_PROP_FPS, self.fps)
        width, height = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if self._intrinsics is None:
            self._intrinsics = Intrinsics.from_fov(width, height, ASSUMED_FOVY_DEG, calibrated=False)
        elif (self._intrinsics.width, self._intrinsics.height) != (width, height):
            cap.release()
            raise DeviceError(
                f"{self.name} delivers {width}x{height} but its calibration is for {self._intrinsics.width}x{self._intrinsics.height}; "
                "set width/height to match or recalibrate."
            )
        self._cap = cap
        self._file_start_ns = now_ns()

    def _grab(self) -> Frame | None:
        cv2 = self._cv2
        ok, bgr = self._cap.read()
        arrival_ns = now_ns()
        if not ok:
            if not self.is_file:
                raise DeviceConnectionError(f"{self.name} stopped delivering frames")
            if not self.loop:
                raise EndOfStream()
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._file_start_ns = now_ns()
            return None
        position_ns = int(self._cap.get(cv2.CAP_PROP_POS_MSEC) * 1e6)
        if self.is_file:
            stamp_ns = self._file_start_ns + position_ns  # media time laid onto the host clock
            if self.realtime:
                time.sleep(max(0.0, (stamp_ns - now_ns()) / 1e9))
        else:
            # UVC buffers carry CLOCK_MONOTONIC; anything else (0, epoch) is not usable as a stamp
            stamp_ns = position_ns if 0 <= arrival_ns - position_ns < 1_000_000_000 else arrival_ns
        color = np.ascontiguousarray(bgr[..., ::-1])
        return Frame(color, stamp_ns, 0, self._intrinsics, sensor_stamp_ns=position_ns)

    def _release(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def intrinsics(self) -> Intrinsics:
        return self._intrinsics


def v4l2_devices() -> list[str]:
    import glob

    return sorted(glob.glob("/dev/video*"), key=lambda p: int(p[len("/dev/video") :]) if p[len("/dev/video") :].isdigit() else 0)
