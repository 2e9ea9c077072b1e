"""The `Camera` interface: a capture thread that keeps only the newest frame, stamped in host time.

Backends implement `_open()`, `_grab()` and `_release()`; the base runs the thread, numbers the
frames, counts the ones nobody read, and reconnects after device loss (retrying `_open()`).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from drivers.errors import DeviceConnectionError, DeviceError


@dataclass(frozen=True)
class Intrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "none"  # "brown_conrady" (RealSense), "plumb_bob" (OpenCV), "none"
    distortion: tuple[float, ...] = ()
    calibrated: bool = True  # False when guessed from an assumed field of view

    def matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_fov(cls, width: int, height: int, fovy_deg: float, calibrated: bool = True) -> "Intrinsics":
        """Square pixels, principal point at the centre (MuJoCo's camera model)."""
        fy = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2)
        return cls(width, height, fy, fy, width / 2, height / 2, calibrated=calibrated)


@dataclass(frozen=True)
class Frame:
    color: np.ndarray  # (H, W, 3) uint8 RGB
    stamp_ns: int  # host time.monotonic_ns() of the exposure, from the sensor's clock where it has one
    seq: int  # 0, 1, 2, ... per delivered frame of this camera
    intrinsics: Intrinsics
    depth_m: np.ndarray | None = None  # (H, W) float32 metres, aligned to color, 0 = no reading
    sensor_stamp_ns: int | None = None  # the sensor's own clock, unconverted


class EndOfStream(Exception):
    """A recording or video file has no more frames."""


class ClockOffsetEstimator:
    """Sensor clock -> host monotonic clock: offset = min over a window of (arrival - sensor stamp).

    Arrival is exposure plus a latency >= 0 that jitters; the minimum over recent frames is the offset
    plus the smallest latency seen, and the window lets it follow slow drift between the two clocks.
    """

    def __init__(self, window: int = 300):
        self._diffs: deque[int] = deque(maxlen=window)

    def update(self, sensor_ns: int, arrival_ns: int) -> int:
        self._diffs.append(arrival_ns - sensor_ns)
        return sensor_ns + self.offset_ns

    @property
    def offset_ns(self) -> int:
        return min(self._diffs)


class Camera(ABC):
    name: str = "camera"
    reconnect_period_s: float = 1.0

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._newest: Frame | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended = False
        self._seq = 0
        self._last_read_seq = -1
        self.frames_captured = 0
        self.frames_dropped = 0  # captured, then replaced by a newer one before anyone read it
        self.errors = 0
        self.reconnects = 0
        self.last_error = ""

    # ---- backend hooks -------------------------------------------------------------------------
    @abstractmethod
    def _open(self) -> None:
        """Open the device; raise a DeviceError that says how to fix it when that is impossible."""

    @abstractmethod
    def _grab(self) -> Frame | None:
        """Block for the next frame (seq is filled in by the base); None = nothing new; raise on loss."""

    @abstractmethod
    def _release(self) -> None: ...

    @abstractmethod
    def intrinsics(self) -> Intrinsics: ...

    def _capture_thread_exit(self) -> None:
        """Runs on the capture thread as it ends (for resources bound to that thread, like a GL context)."""

    # ---- lifecycle -----------------------------------------------------------------------------
    def connect(self) -> None:
        if self._thread is not None:
            return
        self._open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-capture", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._release()

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        try:
            self._capture()
        finally:
            self._capture_thread_exit()

    def _capture(self) -> None:
        while not self._stop.is_set():
            try:
                frame = self._grab()
            except EndOfStream:
                with self._cond:
                    self._ended = True
                    self._cond.notify_all()
                return
            except Exception as exc:  # device lost: keep trying to reopen until closed
                if self._stop.is_set():
                    return
                self.errors += 1
                self.last_error = str(exc)
                self._reopen()
                continue
            if frame is None:
                continue
            with self._cond:
                if self._newest is not None and self._newest.seq != self._last_read_seq:
                    self.frames_dropped += 1
                self._newest = replace(frame, seq=self._seq)
                self._seq += 1
                self.frames_captured += 1
                self._cond.notify_all()

    def _reopen(self) -> None:
        try:
            self._release()
        except Exception:
            pass  # a vanished device may not close cleanly
        while not self._stop.wait(self.reconnect_period_s):
            try:
                self._open()
                self.reconnects += 1
                return
            except Exception as exc:
                self.last_error = str(exc)

    # ---- reading -------------------------------------------------------------------------------
    @property
    def ended(self) -> bool:
        return self._ended

    def read(self, timeout_s: float = 1.0, newer_than: int | None = None) -> Frame:
        """The newest frame (one with seq > newer_than, if given), waiting up to timeout_s for it."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._newest is None or (newer_than is not None and self._newest.seq <= newer_than):
                if self._ended:
                    raise DeviceError(f"{self.name}: the recording has no more frames; reopen it to play it again.")
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    detail = f" (last error: {self.last_error})" if self.last_error else ""
                    raise DeviceConnectionError(
                        f"{self.name} delivered no new frame for {timeout_s:.1f} s{detail}; check its cable and power, and that no other program holds it."
                    )
                self._cond.wait(remaining)
            self._last_read_seq = self._newest.seq
            return self._newest


