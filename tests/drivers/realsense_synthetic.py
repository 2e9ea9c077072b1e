"""A librealsense software device with colour and depth streams, fed synthetic frames with known content and stamps."""

from __future__ import annotations

import time

import numpy as np

W, H, FPS = 64, 48, 30
FX = FY = 50.0
DEPTH_UNITS_M = 0.001
SERIAL = "123456789"


def color_image(i: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = 10 * i  # red carries the frame index
    img[..., 2] = 200  # blue constant: catches a BGR/RGB swap
    return img


def depth_image(i: int) -> np.ndarray:
    return np.full((H, W), 1000 + 10 * i, np.uint16)  # a wall at 1.00 m + 1 cm per frame


class SyntheticRealSense:
    def __init__(self, rs, baseline_m: float = 0.015):
        self.rs = rs
        sd = rs.software_device()
        sd.register_info(rs.camera_info.serial_number, SERIAL)
        sd.register_info(rs.camera_info.name, "Synthetic D435")
        self.depth_sensor = sd.add_sensor("Depth")
        self.color_sensor = sd.add_sensor("Color")
        intr = rs.intrinsics()
        intr.width, intr.height, intr.ppx, intr.ppy, intr.fx, intr.fy = W, H, W / 2, H / 2, FX, FY
        intr.model, intr.coeffs = rs.distortion.brown_conrady, [0.0] * 5
        self.depth_profile = self.depth_sensor.add_video_stream(self._stream(rs.stream.depth, 0, rs.format.z16, 2, intr))
        self.color_profile = self.color_sensor.add_video_stream(self._stream(rs.stream.color, 1, rs.format.rgb8, 3, intr))
        self.depth_sensor.add_read_only_option(rs.option.depth_units, DEPTH_UNITS_M)
        extrinsics = rs.extrinsics()
        extrinsics.rotation = [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]
        extrinsics.translation = [baseline_m, 0.0, 0.0]  # depth imager beside the colour one, as on a D435
        self.depth_profile.register_extrinsics_to(self.color_profile, extrinsics)
        sd.create_matcher(rs.matchers.default)
        self.device = sd

    def _stream(self, kind, uid, fmt, bpp, intr):
        vs = self.rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height, vs.fps, vs.bpp, vs.fmt, vs.intrinsics = kind, 0, uid, W, H, FPS, bpp, fmt, intr
        return vs

    def push(self, i: int, stamp_ms: float, domain) -> None:
        rs = self.rs
        for sensor, profile, image, bpp in (
            (self.depth_sensor, self.depth_profile, depth_image(i), 2),
            (self.color_sensor, self.color_profile, color_image(i), 3),
        ):
            frame = rs.software_video_frame()
            frame.pixels, frame.bpp, frame.stride = image, bpp, W * bpp
            frame.timestamp, frame.domain, frame.frame_number = stamp_ms, domain, i
            frame.profile = profile.as_video_stream_profile()
            if sensor is self.depth_sensor:
                frame.depth_units = DEPTH_UNITS_M
            sensor.on_video_frame(frame)


def framesets(device: SyntheticRealSense, count: int, domain, stamp_ms, period_s: float = 1 / FPS):
    """Push `count` frames `period_s` apart and yield (frameset, arrival_ns, push_ns) for each.

    librealsense's syncer does not pair this software device's streams (it hands out colour alone), so
    a processing block pairs each colour frame with its depth frame into a frameset, as the syncer would.
    """
    rs = device.rs
    queue = rs.frame_queue(50, True)
    sensors = ((device.depth_sensor, device.depth_profile), (device.color_sensor, device.color_profile))
    for sensor, profile in sensors:
        sensor.open(profile)
        sensor.start(queue)
    held = {}
    pairer = rs.processing_block(lambda color, source: source.frame_ready(source.allocate_composite_frame([held["depth"], color])))
    paired = rs.frame_queue(10, True)
    pairer.start(paired)
    try:
        for i in range(count):
            push_ns = time.monotonic_ns()
            device.push(i, stamp_ms(i), domain)
            for _ in range(2):
                frame = queue.wait_for_frame(1000)
                if frame.get_profile().stream_type() == rs.stream.depth:
                    held["depth"] = frame
                else:
                    color = frame
            pairer.invoke(color)
            frameset = paired.wait_for_frame(1000).as_frameset()
            yield frameset, time.monotonic_ns(), push_ns
            time.sleep(max(0.0, (push_ns + period_s * 1e9 - time.monotonic_ns()) / 1e9))
    finally:
        for sensor, _ in sensors:
            sensor.stop()
            sensor.close()
