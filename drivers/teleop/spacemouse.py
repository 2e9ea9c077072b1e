"""3Dconnexion SpaceMouse over raw HID (hidapi), no 3Dconnexion driver or spacenavd needed.

HID input reports: id 1 = translation x, y, z; id 2 = rotation rx, ry, rz (int16 little-endian each,
about +-350 at full deflection); id 3 = button bitmask. Newer devices (SpaceMouse Wireless, Compact,
Pro Wireless, Universal Receiver) send one 13-byte id-1 report with translation and rotation.
"""

from __future__ import annotations

import importlib
import struct
import threading
from dataclasses import dataclass, field

import numpy as np

from drivers.arms.base import now_ns
from drivers.errors import DeviceConnectionError, DeviceNotFoundError, require
from drivers.teleop.base import EngageLatch, InterventionDevice, TeleopReading, apply_deadband

VENDOR_IDS = (0x046D, 0x256F)  # Logitech (older 3Dconnexion devices), 3Dconnexion
PRODUCT_IDS = {
    0xC626: "SpaceNavigator",
    0xC627: "SpaceExplorer",
    0xC628: "SpaceNavigator for Notebooks",
    0xC62B: "SpaceMouse Pro",
    0xC62E: "SpaceMouse Wireless (cable)",
    0xC62F: "SpaceMouse Wireless (receiver)",
    0xC631: "SpaceMouse Pro Wireless (cable)",
    0xC632: "SpaceMouse Pro Wireless (receiver)",
    0xC633: "SpaceMouse Enterprise",
    0xC635: "SpaceMouse Compact",
    0xC652: "3Dconnexion Universal Receiver",
}
FULL_SCALE = 350.0  # raw counts at full deflection
# raw HID axes -> x forward... as pyspacemouse maps them: y and z and the first two rotations flip sign
AXIS_SIGNS = np.array([1.0, -1.0, -1.0, -1.0, -1.0, 1.0])


@dataclass
class SpaceMouseDecoder:
    """Turns raw HID reports into readings: deadband, scaling to m/s and rad/s, gripper from the buttons."""

    max_linear_m_s: float = 0.1
    max_angular_rad_s: float = 0.4
    deadband: float = 0.1  # of full scale: the cap never rests at exactly zero
    latch: EngageLatch = field(default_factory=EngageLatch)
    raw: np.ndarray = field(default_factory=lambda: np.zeros(6))  # counts, HID order tx ty tz rx ry rz
    buttons: tuple[bool, ...] = (False, False)
    stamp_ns: int = 0
    reports: int = 0
    ignored: int = 0

    def feed(self, report: bytes, stamp_ns: int) -> None:
        report = bytes(report)
        if not report:
            return
        report_id = report[0]
        if report_id == 1 and len(report) >= 13:
            self.raw[:] = struct.unpack_from("<6h", report, 1)
        elif report_id == 1 and len(report) >= 7:
            self.raw[:3] = struct.unpack_from("<3h", report, 1)
        elif report_id == 2 and len(report) >= 7:
            self.raw[3:] = struct.unpack_from("<3h", report, 1)
        elif report_id == 3 and len(report) >= 2:
            mask = int.from_bytes(report[1:], "little")
            self.buttons = tuple(bool(mask >> i & 1) for i in range(8 * (len(report) - 1)))
        else:
            self.ignored += 1  # battery, LED and other vendor reports
            return
        self.reports += 1
        self.stamp_ns = stamp_ns

    def reading(self, stamp_ns: int | None = None) -> TeleopReading:
        stamp_ns = self.stamp_ns if stamp_ns is None else stamp_ns
        axes = apply_deadband(AXIS_SIGNS * self.raw / FULL_SCALE, self.deadband)
        left, right = (self.buttons + (False, False))[:2]
        gripper = 1.0 if left and not right else -1.0 if right and not left else 0.0  # left closes, right opens
        engaged = self.latch.update(bool(np.any(axes != 0) or left or right), stamp_ns)
        twist = np.concatenate([axes[:3] * self.max_linear_m_s, axes[3:] * self.max_angular_rad_s])
        if not engaged:
            twist = np.zeros(6)
        return TeleopReading(self.stamp_ns, twist, gripper, engaged, self.buttons, "spacemouse")


HID_HINT = "pip install hidapi (and apt-get install libhidapi-hidraw0)"


def hid_backend():
    """hidapi's hidraw backend (/dev/hidraw*, leaves the kernel driver alone); its libusb one as fallback."""
    try:
        return importlib.import_module("hidraw")
    except ImportError:
        return require("hid", HID_HINT)


def find_spacemice(hid) -> list[dict]:
    return [d for d in hid.enumerate() if d["vendor_id"] in VENDOR_IDS and d["product_id"] in PRODUCT_IDS]


class SpaceMouse(InterventionDevice):
    name = "spacemouse"

    def __init__(self, path: bytes | str | None = None, decoder: SpaceMouseDecoder | None = None):
        self.path = path.encode() if isinstance(path, str) else path
        self.decoder = decoder or SpaceMouseDecoder()
        self._device = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def connect(self) -> None:
        hid = hid_backend()
        path = self.path
        if path is None:
            found = find_spacemice(hid)
            if not found:
                raise DeviceNotFoundError(
                    "no 3Dconnexion SpaceMouse found on USB/HID; plug it in (for the wireless ones, the receiver) "
                    "and, if it is listed by `lsusb` but not here, add the udev rule from `robot-rl doctor`."
                )
            path = found[0]["path"]
        device = hid.device()
        try:
            device.open_path(path)
        except OSError as exc:
            raise DeviceConnectionError(
                f"cannot open the SpaceMouse at {path!r} ({exc}); give your user access to hidraw with the udev rule from `robot-rl doctor`."
            ) from None
        self._device = device
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="spacemouse-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = self._device.read(64, 50)
            except OSError:
                break  # unplugged: read() keeps returning the last reading, with its old stamp
            if report:
                with self._lock:
                    self.decoder.feed(bytes(report), now_ns())

    def read(self) -> TeleopReading:
        with self._lock:
            return self.decoder.reading(now_ns())

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._device is not None:
            self._device.close()
            self._device = None
