"""Intel RealSense (pyrealsense2): colour + depth aligned to colour, live by serial or from a recording.

Timestamps: frames in the `global_time`/`system_time` domains are host wall-clock milliseconds and
are moved onto the monotonic clock; `hardware_clock` frames (the camera's own counter) go through a
`ClockOffsetEstimator`. Recordings (`.db3`, rosbag2, what librealsense 2.56+ writes; older `.bag`
files play too) replay through the same pipeline code as a live camera.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from drivers.arms.base import now_ns
from drivers.cameras.base import Camera, ClockOffsetEstimator, EndOfStream, Frame, Intrinsics
from drivers.errors import DeviceNotFoundError, require

INSTALL_HINT = "pip install pyrealsense2 (and apt-get install libusb-1.0-0)"


def _rs():
    return require("pyrealsense2", INSTALL_HINT)


def connected_serials(rs=None) -> list[str]:
    rs = rs or _rs()
    return [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]


def intrinsics_from_profile(profile) -> Intrinsics:
    i = profile.as_video_stream_profile().get_intrinsics()
    return Intrinsics(i.width, i.height, i.fx, i.fy, i.ppx, i.ppy, str(i.model).split(".")[-1], tuple(i.coeffs))


class RealSenseFrames:
    """Frameset -> `Frame`: alignment, depth in metres, timestamps on the host monotonic clock."""

    def __init__(self, depth_scale_m: float, align: bool = True):
        self.rs = _rs()
        self.depth_scale_m = depth_scale_m
        self.align = self.rs.align(self.rs.stream.color) if align else None
        self.clock = ClockOffsetEstimator()
        self._last_color_number: int | None = None
        self.intrinsics: Intrinsics | None = None

    def host_ns(self, stamp_ms: float, domain, arrival_ns: int) -> int:
        rs = self.rs
        sensor_ns = int(round(stamp_ms * 1e6))
        if domain in (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time):
            return sensor_ns - (time.time_ns() - time.monotonic_ns())  # wall clock -> monotonic
        return self.clock.update(sensor_ns, arrival_ns)

    def convert(self, frames, arrival_ns: int) -> Frame | None:
        """None when the set carries no new colour frame (playback repeats one to pair it with depth)."""
        if self.align is not None:
            frames = self.align.process(frames)
        color = frames.get_color_frame()
        if not color:
            return None
        number = color.get_frame_number()
        if number == self._last_color_number:
            return None
        self._last_color_number = number
        if self.intrinsics is None:
            self.intrinsics = intrinsics_from_profile(color.get_profile())
        depth = frames.get_depth_frame()
        depth_m = np.asanyarray(depth.get_data()).astype(np.float32) * self.depth_scale_m if depth else None
        stamp_ms = color.get_timestamp()
        return Frame(
            color=np.array(color.get_data(), dtype=np.uint8),
            stamp_ns=self.host_ns(stamp_ms, color.get_frame_timestamp_domain(), arrival_ns),
            seq=0,
            intrinsics=self.intrinsics,
            depth_m=depth_m,
            sensor_stamp_ns=int(round(stamp_ms * 1e6)),
        )


class RealSenseCamera(Camera):
    def __init__(
        self,
        serial: str | None = None,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        depth: bool = True,
        align_depth_to_color: bool = True,
        color_exposure_100us: float | None = None,  # None = auto exposure; D400 RGB units are 100 us
        color_gain: float | None = None,
        playback_path: str | Path | None = None,
        playback_realtime: bool = True,
        timeout_ms: int = 1000,
    ):
        super().__init__()
        self.serial = serial
        self.width, self.height, self.fps = width, height, fps
        self.depth = depth
        self.align_depth_to_color = align_depth_to_color
        self.color_exposure_100us = color_exposure_100us
        self.color_gain = color_gain
        self.playback_path = Path(playback_path) if playback_path is not None else None
        self.playback_realtime = playback_realtime
        self.timeout_ms = timeout_ms
        self.name = f"RealSense recording {self.playback_path}" if self.playback_path else f"RealSense {serial or '(first found)'}"
        self._pipeline = None
        self._playback = None
        self._frames: RealSenseFrames | None = None

    def _open(self) -> None:
        rs = _rs()
        config = rs.config()
        if self.playback_path is not None:
            if not self.playback_path.is_file():
                raise DeviceNotFoundError(f"RealSense recording {self.playback_path} does not exist; check the path.")
            config.enable_device_from_file(str(self.playback_path), repeat_playback=False)
        else:
            serials = connected_serials(rs)
            if not serials:
                raise DeviceNotFoundError(
                    "no RealSense camera found; plug it into a USB 3 port and check `robot-rl doctor` (udev rules, libusb-1.0-0)."
                )
            if self.serial is not None and self.serial not in serials:
                raise DeviceNotFoundError(f"no RealSense with serial {self.serial}; connected: {', '.join(serials)}; set serial to one of these.")
            config.enable_device(self.serial or serials[0])
            self.serial = self.serial or serials[0]
            config.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
            if self.depth:
                config.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        pipeline = rs.pipeline()
        profile = pipeline.start(config)
        device = profile.get_device()
        depth_scale_m = 0.0
        if self.depth and device.first_depth_sensor():
            depth_scale_m = device.first_depth_sensor().get_depth_scale()
        if self.playback_path is not None:
            self._playback = device.as_playback()
            self._playback.set_real_time(self.playback_realtime)
        else:
            self._configure_exposure(rs, device)
        self._frames = RealSenseFrames(depth_scale_m, align=self.depth and self.align_depth_to_color)
        self._frames.intrinsics = intrinsics_from_profile(profile.get_stream(rs.stream.color))
        self._pipeline = pipeline

    def _configure_exposure(self, rs, device) -> None:
        color = device.first_color_sensor()
        if self.color_exposure_100us is None:
            color.set_option(rs.option.enable_auto_exposure, 1)
            return
        color.set_option(rs.option.enable_auto_exposure, 0)
        color.set_option(rs.option.exposure, float(self.color_exposure_100us))
        if self.color_gain is not None:
            color.set_option(rs.option.gain, float(self.color_gain))

    def _grab(self) -> Frame | None:
        try:
            frames = self._pipeline.wait_for_frames(self.timeout_ms)
        except RuntimeError:
            if self._playback is not None and self._playback.current_status() == _rs().playback_status.stopped:
                raise EndOfStream() from None
            raise
        return self._frames.convert(frames, now_ns())

    def _release(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            finally:
                self._pipeline = None
                self._playback = None

    def intrinsics(self) -> Intrinsics:
        if self._frames is None or self._frames.intrinsics is None:
            raise DeviceNotFoundError(f"{self.name} is not connected; call connect() first.")
        return self._frames.intrinsics

    @property
    def clock_offset_ns(self) -> int | None:
        """Estimated host-minus-sensor offset for hardware-clock frames (None before the first one)."""
        try:
            return self._frames.clock.offset_ns
        except (AttributeError, ValueError):
            return None
