"""The `InterventionDevice` interface: a human (or scripted expert) that can take over the arm."""

from __future__ import annotations

import os
import select
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from drivers.arms.base import now_ns


@dataclass(frozen=True)
class TeleopReading:
    stamp_ns: int  # host time.monotonic_ns() of the newest input that went into this reading
    twist: np.ndarray  # (6,) [v_m_s (3), w_rad_s (3)] in the device's frame (x forward, y left, z up)
    gripper: float  # -1 open, 0 leave as is, +1 close
    engaged: bool  # True while the operator is intervening; the twist is zero otherwise
    buttons: tuple[bool, ...] = ()
    device: str = ""


def idle_reading(device: str, stamp_ns: int | None = None, buttons: tuple[bool, ...] = ()) -> TeleopReading:
    return TeleopReading(stamp_ns if stamp_ns is not None else now_ns(), np.zeros(6), 0.0, False, buttons, device)


def apply_deadband(values: np.ndarray, deadband: float) -> np.ndarray:
    """Zero |v| < deadband and rescale the rest so the output is continuous from 0 at the band's edge to 1."""
    values = np.clip(values, -1.0, 1.0)
    magnitude = np.maximum(np.abs(values) - deadband, 0.0) / (1.0 - deadband)
    return np.sign(values) * magnitude


@dataclass
class EngageLatch:
    """Engaged while there is input, and for `release_ms` after it stops (a released stick or cap
    passes through zero for a report or two; without the latch an intervention flickers off)."""

    release_ms: float = 300.0
    _last_active_ns: int | None = field(default=None, repr=False)

    def update(self, active: bool, stamp_ns: int) -> bool:
        if active:
            self._last_active_ns = stamp_ns
            return True
        return self._last_active_ns is not None and stamp_ns - self._last_active_ns < self.release_ms * 1e6


class InterventionDevice(ABC):
    name: str = "device"

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def read(self) -> TeleopReading:
        """The newest reading; never blocks."""

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class EventFileDevice(InterventionDevice):
    """Reads fixed-size input events from a character device (or FIFO) on a thread: Linux joystick
    (/dev/input/js*) and evdev (/dev/input/event*) devices share this, only the decoder differs."""

    event_size: int = 8

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.events = 0

    @abstractmethod
    def _feed(self, event: bytes, stamp_ns: int) -> None:
        """Decode one event (called on the reader thread, under the lock)."""

    def _open_error(self, exc: OSError) -> Exception:
        from drivers.errors import DeviceConnectionError, DeviceNotFoundError

        if isinstance(exc, FileNotFoundError):
            return DeviceNotFoundError(f"{self.name}: {self.path} does not exist; plug the device in or pass the right path (see `robot-rl doctor`).")
        return DeviceConnectionError(f"{self.name}: cannot open {self.path} ({exc.strerror}); add your user to the 'input' group or add a udev rule (see `robot-rl doctor`).")

    def connect(self) -> None:
        if self._thread is not None:
            return
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise self._open_error(exc) from None
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self._fd, 64 * self.event_size)
            except BlockingIOError:
                continue
            except OSError:
                break  # unplugged: read() keeps returning the last reading, with its old stamp
            if not chunk:  # a FIFO whose writer closed: wait for the next one
                self._stop.wait(0.01)
                continue
            stamp_ns = now_ns()
            pending += chunk
            whole = len(pending) - len(pending) % self.event_size
            with self._lock:
                for offset in range(0, whole, self.event_size):
                    self._feed(pending[offset : offset + self.event_size], stamp_ns)
                    self.events += 1
            pending = pending[whole:]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
