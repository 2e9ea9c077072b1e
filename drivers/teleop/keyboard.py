"""Keyboard teleop from key state: held keys give a twist. Keys come from a Linux evdev keyboard
(/dev/input/event*, 24-byte input_event records, decoded here), so it works without a window.

W/S forward/back, A/D left/right, R/F up/down, Q/E yaw, I/K pitch, J/L roll; C closes the
gripper, O opens it. Engaged while any of these keys is held (plus the release latch).
"""

from __future__ import annotations

import glob
import struct
from dataclasses import dataclass, field

import numpy as np

from drivers.teleop.base import EngageLatch, EventFileDevice, TeleopReading

INPUT_EVENT = struct.Struct("<qqHHi")  # struct timeval (64-bit), type, code, value
EV_KEY = 0x01
# Linux input-event-codes.h key codes for the keys used here
KEY_CODES = {17: "w", 31: "s", 30: "a", 32: "d", 19: "r", 33: "f", 16: "q", 18: "e", 23: "i", 37: "k", 36: "j", 38: "l", 46: "c", 24: "o"}
# key -> (twist index, direction) in x forward / y left / z up
MOTION_KEYS = {
    "w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1),
    "j": (3, 1), "l": (3, -1), "i": (4, 1), "k": (4, -1), "q": (5, 1), "e": (5, -1),
}


def twist_from_keys(pressed: set[str], max_linear_m_s: float, max_angular_rad_s: float) -> np.ndarray:
    axes = np.zeros(6)
    for key in pressed:
        if key in MOTION_KEYS:
            index, direction = MOTION_KEYS[key]
            axes[index] += direction
    axes = np.clip(axes, -1, 1)
    return np.concatenate([axes[:3] * max_linear_m_s, axes[3:] * max_angular_rad_s])


@dataclass
class KeyboardDecoder:
    max_linear_m_s: float = 0.05
    max_angular_rad_s: float = 0.3
    latch: EngageLatch = field(default_factory=lambda: EngageLatch(release_ms=0.0))
    pressed: set[str] = field(default_factory=set)
    stamp_ns: int = 0

    def key(self, name: str, down: bool, stamp_ns: int) -> None:
        (self.pressed.add if down else self.pressed.discard)(name)
        self.stamp_ns = stamp_ns

    def feed(self, event: bytes, stamp_ns: int) -> None:
        _sec, _usec, kind, code, value = INPUT_EVENT.unpack(event)
        if kind == EV_KEY and code in KEY_CODES:
            self.key(KEY_CODES[code], value != 0, stamp_ns)  # value 2 (autorepeat) counts as held

    def reading(self, stamp_ns: int) -> TeleopReading:
        active = bool(self.pressed & (set(MOTION_KEYS) | {"c", "o"}))
        engaged = self.latch.update(active, stamp_ns)
        twist = twist_from_keys(self.pressed, self.max_linear_m_s, self.max_angular_rad_s) if engaged else np.zeros(6)
        close, open_ = "c" in self.pressed, "o" in self.pressed
        gripper = 1.0 if close and not open_ else -1.0 if open_ and not close else 0.0
        return TeleopReading(self.stamp_ns, twist, gripper, engaged, (), "keyboard")


def find_keyboards() -> list[str]:
    return sorted(glob.glob("/dev/input/by-path/*-kbd")) or sorted(glob.glob("/dev/input/by-id/*-kbd"))


class Keyboard(EventFileDevice):
    name = "keyboard"
    event_size = INPUT_EVENT.size

    def __init__(self, path: str | None = None, decoder: KeyboardDecoder | None = None):
        if path is None:
            found = find_keyboards()
            path = found[0] if found else "/dev/input/by-path/keyboard-kbd"
        super().__init__(path)
        self.decoder = decoder or KeyboardDecoder()

    def _feed(self, event: bytes, stamp_ns: int) -> None:
        self.decoder.feed(event, stamp_ns)

    def read(self) -> TeleopReading:
        from drivers.arms.base import now_ns

        with self._lock:
            return self.decoder.reading(now_ns())


def key_event(code: int, down: bool) -> bytes:
    """Encode one evdev key event (what the kernel writes); for simulators and tests."""
    return INPUT_EVENT.pack(0, 0, EV_KEY, code, 1 if down else 0)
