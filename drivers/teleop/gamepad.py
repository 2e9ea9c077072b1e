"""Gamepad through the Linux joystick API (/dev/input/js*): 8-byte events, decoded here.

struct js_event { u32 time_ms; s16 value; u8 type; u8 number; }; type 1 = button, 2 = axis,
0x80 flags the synthetic events the kernel sends on open with the initial state.
Default mapping (xpad: Xbox and most clones): hold LB (the deadman) to engage; left stick
moves in x/y, right stick up/down in z and turns in yaw, the d-pad rolls and pitches;
A closes the gripper, B opens it.
"""

from __future__ import annotations

import glob
import struct
from dataclasses import dataclass, field

import numpy as np

from drivers.teleop.base import EventFileDevice, TeleopReading, apply_deadband

JS_EVENT = struct.Struct("<IhBB")
JS_BUTTON, JS_AXIS, JS_INIT = 0x01, 0x02, 0x80
AXIS_FULL_SCALE = 32767.0


@dataclass(frozen=True)
class GamepadMapping:
    # (axis index, sign) for each twist component, in x forward / y left / z up; xpad axes:
    # 0 LX, 1 LY (down +), 2 LT, 3 RX, 4 RY (down +), 5 RT, 6 d-pad X, 7 d-pad Y
    twist_axes: tuple[tuple[int, float], ...] = ((1, -1.0), (0, -1.0), (4, -1.0), (6, 1.0), (7, -1.0), (3, -1.0))
    deadman_button: int = 4  # LB
    close_button: int = 0  # A
    open_button: int = 1  # B


@dataclass
class JoystickDecoder:
    mapping: GamepadMapping = field(default_factory=GamepadMapping)
    max_linear_m_s: float = 0.1
    max_angular_rad_s: float = 0.4
    deadband: float = 0.15  # sticks rest a few percent off centre
    axes: dict[int, float] = field(default_factory=dict)  # normalised to [-1, 1]
    buttons: dict[int, bool] = field(default_factory=dict)
    stamp_ns: int = 0
    device_time_ms: int = 0

    def feed(self, event: bytes, stamp_ns: int) -> None:
        time_ms, value, kind, number = JS_EVENT.unpack(event)
        kind &= ~JS_INIT
        if kind == JS_AXIS:
            self.axes[number] = value / AXIS_FULL_SCALE
        elif kind == JS_BUTTON:
            self.buttons[number] = bool(value)
        else:
            return
        self.stamp_ns, self.device_time_ms = stamp_ns, time_ms

    def reading(self) -> TeleopReading:
        m = self.mapping
        raw = np.array([sign * self.axes.get(axis, 0.0) for axis, sign in m.twist_axes])
        axes = apply_deadband(raw, self.deadband)
        engaged = self.buttons.get(m.deadman_button, False)
        twist = np.concatenate([axes[:3] * self.max_linear_m_s, axes[3:] * self.max_angular_rad_s]) if engaged else np.zeros(6)
        close, open_ = self.buttons.get(m.close_button, False), self.buttons.get(m.open_button, False)
        gripper = 1.0 if close and not open_ else -1.0 if open_ and not close else 0.0
        count = max(self.buttons, default=-1) + 1
        buttons = tuple(self.buttons.get(i, False) for i in range(count))
        return TeleopReading(self.stamp_ns, twist, gripper if engaged else 0.0, engaged, buttons, "gamepad")


def find_joysticks() -> list[str]:
    return sorted(glob.glob("/dev/input/js*"))


class Gamepad(EventFileDevice):
    name = "gamepad"
    event_size = JS_EVENT.size

    def __init__(self, path: str | None = None, decoder: JoystickDecoder | None = None):
        if path is None:
            found = find_joysticks()
            path = found[0] if found else "/dev/input/js0"
        super().__init__(path)
        self.decoder = decoder or JoystickDecoder()

    def _feed(self, event: bytes, stamp_ns: int) -> None:
        self.decoder.feed(event, stamp_ns)

    def read(self) -> TeleopReading:
        with self._lock:
            return self.decoder.reading()


def js_event(value: int, kind: int, number: int, time_ms: int = 0) -> bytes:
    """Encode one joystick event (what the kernel writes); for simulators and tests."""
    return JS_EVENT.pack(time_ms & 0xFFFFFFFF, value, kind, number)
