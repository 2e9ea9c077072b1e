"""Validate an incoming sensor_msgs/Image (its fields, duck-typed) and view it as a numpy array."""

from __future__ import annotations

import numpy as np

CHANNELS = {"rgb8": (3, np.uint8), "bgr8": (3, np.uint8), "mono8": (1, np.uint8), "32FC1": (1, np.float32)}


def image_array(msg, expect_encoding: str, expect_hw: tuple[int, int] | None = None) -> tuple[np.ndarray | None, str | None]:
    """(array, None) for a good image, (None, reason) otherwise; reasons are the diagnostics' counter names."""
    if msg.encoding != expect_encoding:
        return None, "encoding"
    channels, dtype = CHANNELS[expect_encoding]
    row_bytes = msg.width * channels * np.dtype(dtype).itemsize
    if msg.height <= 0 or msg.width <= 0 or msg.step < row_bytes or len(msg.data) != msg.step * msg.height:
        return None, "size"
    if expect_hw is not None and (msg.height, msg.width) != tuple(expect_hw):
        return None, "size"
    raw = np.frombuffer(msg.data, dtype=np.uint8)  # array.array('B') from rclpy, bytes elsewhere
    rows = raw.reshape(msg.height, msg.step)[:, :row_bytes]
    array = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)
    if expect_encoding == "bgr8":
        array = array[..., ::-1]
    if dtype == np.float32 and not np.all(np.isfinite(array)):
        return None, "nonfinite"
    return (array if channels == 3 else array[..., 0]), None
