"""What is connected and usable on this machine, and for each missing piece the exact fix.

`doctor(franka_host=...)` returns a `DoctorReport`; `report.text()` is what `robot-rl doctor` prints.
Nothing here moves a robot or opens a device for longer than a probe.
"""

from __future__ import annotations

import ctypes.util
import glob
import importlib
import os
import platform
import resource
from dataclasses import asdict, dataclass, field

REALSENSE_UDEV_RULE = (
    "/etc/udev/rules.d/99-realsense-libusb.rules:\n"
    '    SUBSYSTEMS=="usb", ATTRS{idVendor}=="8086", MODE="0666", GROUP="plugdev"\n'
    "then: sudo udevadm control --reload-rules && sudo udevadm trigger"
)
SPACEMOUSE_UDEV_RULE = (
    "/etc/udev/rules.d/99-spacemouse.rules:\n"
    '    SUBSYSTEM=="hidraw", ATTRS{idVendor}=="256f", MODE="0666"\n'
    '    SUBSYSTEM=="hidraw", ATTRS{idVendor}=="046d", ATTRS{idProduct}=="c6*", MODE="0666"\n'
    "then: sudo udevadm control --reload-rules && sudo udevadm trigger, and replug the device"
)
REALTIME_LIMITS = (
    "/etc/security/limits.d/99-realtime.conf:\n"
    "    @realtime  -  rtprio   99\n"
    "    @realtime  -  priority 99\n"
    "    @realtime  -  memlock  unlimited\n"
    "then: sudo groupadd -f realtime && sudo usermod -aG realtime $USER, and log in again"
)
SDKS = {
    "franky": ("franky-control", "pip install franky-control (the Franka arm over libfranka)"),
    "pyrealsense2": ("pyrealsense2", "pip install pyrealsense2 (RealSense cameras)"),
    "cv2": ("opencv-python-headless", "pip install opencv-python-headless (V4L2 cameras, video files)"),
    "hid": ("hidapi", "pip install hidapi (SpaceMouse over raw HID)"),
    "mujoco": ("mujoco", "pip install mujoco (simulated arm and cameras)"),
}


@dataclass
class Check:
    name: str
    ok: bool
    found: str  # what is there, in a few words
    fix: str = ""  # empty when ok; otherwise the exact command, package or file content


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def missing(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}

    def text(self) -> str:
        lines = []
        for c in self.checks:
            lines.append(f"[{'ok' if c.ok else '--'}] {c.name}: {c.found}")
            if c.fix:
                lines.extend("       " + line for line in f"fix: {c.fix}".splitlines())
        return "\n".join(lines)


def _import(module: str):
    try:
        return importlib.import_module(module)
    except Exception:  # a broken install counts as missing
        return None


def check_sdks() -> list[Check]:
    checks = []
    for module, (package, hint) in SDKS.items():
        found = _import(module) is not None
        checks.append(Check(f"python package {package}", found, "installed" if found else "not installed", "" if found else hint))
    return checks


def check_realsense() -> Check:
    if ctypes.util.find_library("usb-1.0") is None:
        return Check("RealSense", False, "libusb-1.0 missing", "sudo apt-get install -y libusb-1.0-0")
    rs = _import("pyrealsense2")
    if rs is None:
        return Check("RealSense", False, "pyrealsense2 not installed", SDKS["pyrealsense2"][1])
    try:
        serials = [d.get_info(rs.camera_info.serial_number) for d in rs.context().query_devices()]
    except Exception as exc:
        return Check("RealSense", False, f"librealsense failed to enumerate ({exc})", REALSENSE_UDEV_RULE)
    if not serials:
        return Check("RealSense", False, "no camera found", "plug it into a USB 3 port; if `lsusb` lists it (8086:...), add\n" + REALSENSE_UDEV_RULE)
    return Check("RealSense", True, "serials " + ", ".join(serials))


def check_v4l2() -> Check:
    devices = sorted(glob.glob("/dev/video*"))
    if not devices:
        return Check("V4L2 cameras", False, "no /dev/video* devices", "plug in a webcam; in a container, pass --device /dev/video0")
    unreadable = [d for d in devices if not os.access(d, os.R_OK | os.W_OK)]
    if unreadable:
        return Check("V4L2 cameras", False, f"{', '.join(unreadable)} not accessible", "sudo usermod -aG video $USER, and log in again")
    return Check("V4L2 cameras", True, ", ".join(devices))


def check_spacemouse() -> Check:
    from drivers.errors import DeviceError
    from drivers.teleop.spacemouse import PRODUCT_IDS, find_spacemice, hid_backend

    try:
        hid = hid_backend()
    except DeviceError:
        return Check("SpaceMouse", False, "hidapi not installed", SDKS["hid"][1])
    found = find_spacemice(hid)
    if not found:
        return Check("SpaceMouse", False, "none on USB/HID", "plug it in (wireless: the receiver); if `lsusb` lists 256f:/046d:c6.. but it is not found here, add\n" + SPACEMOUSE_UDEV_RULE)
    device = found[0]
    path = device["path"].decode() if isinstance(device["path"], bytes) else str(device["path"])
    if path.startswith("/dev/") and not os.access(path, os.R_OK | os.W_OK):
        return Check("SpaceMouse", False, f"{PRODUCT_IDS[device['product_id']]} at {path}, no access", SPACEMOUSE_UDEV_RULE)
    return Check("SpaceMouse", True, f"{PRODUCT_IDS[device['product_id']]} at {path}")


def check_gamepads() -> Check:
    pads = sorted(glob.glob("/dev/input/js*"))
    if not pads:
        return Check("gamepad", False, "no /dev/input/js* device", "plug the gamepad in (sudo modprobe joydev if it is listed by `lsusb` only)")
    unreadable = [p for p in pads if not os.access(p, os.R_OK)]
    if unreadable:
        return Check("gamepad", False, f"{', '.join(unreadable)} not readable", "sudo usermod -aG input $USER, and log in again")
    return Check("gamepad", True, ", ".join(pads))


def check_franka(host: str, timeout_s: float = 1.0) -> Check:
    from drivers.arms.franky_arm import FCI_PORT, fci_unreachable

    why = fci_unreachable(host, timeout_s)
    if why is None:
        return Check(f"Franka at {host}", True, f"FCI answers on port {FCI_PORT}")
    if "within" in why:  # nothing at that address
        fix = "connect this PC to the Control box's LAN port with a static IP on the robot's subnet (e.g. 172.16.0.1/24) and check the robot's IP in Desk"
    else:  # the host is there, FCI is not listening
        fix = "unlock the brakes and activate FCI in Desk (Settings > FCI), or check the IP"
    return Check(f"Franka at {host}", False, why, fix)


def check_realtime() -> Check:
    version = platform.uname().version
    rt_kernel = "PREEMPT_RT" in version or (os.path.exists("/sys/kernel/realtime") and open("/sys/kernel/realtime").read().strip() == "1")
    soft, _hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
    may_rt = os.geteuid() == 0 or soft == resource.RLIM_INFINITY or soft >= 80
    if not rt_kernel:
        return Check("realtime kernel", False, "not a PREEMPT_RT kernel (libfranka needs one on a real robot)",
                     "Ubuntu: sudo pro enable realtime-kernel; Debian: sudo apt-get install -y linux-image-rt-amd64; reboot into it. "
                     "Simulation runs without: FrankyArm(realtime='ignore')" + ("" if may_rt else "\nalso: " + REALTIME_LIMITS))
    if not may_rt:
        return Check("realtime kernel", False, f"PREEMPT_RT, but rtprio limit is {soft}", REALTIME_LIMITS)
    return Check("realtime kernel", True, "PREEMPT_RT, realtime priority allowed")


def check_rendering() -> Check:
    backend = os.environ.get("MUJOCO_GL", "")
    if ctypes.util.find_library("EGL") is None and ctypes.util.find_library("OSMesa") is None:
        return Check("MuJoCo rendering", False, "neither EGL nor OSMesa found", "sudo apt-get install -y libegl1 libgl1-mesa-dri libosmesa6; export MUJOCO_GL=egl")
    if backend not in ("egl", "osmesa"):
        return Check("MuJoCo rendering", False, f"MUJOCO_GL={backend or '(unset)'}: headless rendering needs egl or osmesa", "export MUJOCO_GL=egl")
    return Check("MuJoCo rendering", True, f"MUJOCO_GL={backend}")


def doctor(franka_host: str | None = None, timeout_s: float = 1.0) -> DoctorReport:
    checks = check_sdks()
    checks += [check_realsense(), check_v4l2(), check_spacemouse(), check_gamepads(), check_realtime(), check_rendering()]
    if franka_host is not None:
        checks.append(check_franka(franka_host, timeout_s))
    return DoctorReport(checks)
