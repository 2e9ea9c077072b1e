"""Intervention devices from raw bytes: SpaceMouse HID reports, joystick and evdev events through a FIFO."""

from __future__ import annotations

import os
import struct
import time

import numpy as np
import pytest

from drivers.errors import DeviceNotFoundError
from drivers.teleop.gamepad import JS_AXIS, JS_BUTTON, JS_INIT, Gamepad, js_event
from drivers.teleop.keyboard import Keyboard, key_event
from drivers.teleop.scripted import ScriptedDevice
from drivers.teleop.spacemouse import SpaceMouse, SpaceMouseDecoder

MS = 1_000_000


def report(report_id: int, *values: int) -> bytes:
    return bytes([report_id]) + struct.pack(f"<{len(values)}h", *values)


def test_spacemouse_split_reports_signs_and_scaling():
    dec = SpaceMouseDecoder(max_linear_m_s=0.1, max_angular_rad_s=0.4, deadband=0.1)
    dec.feed(report(1, 350, -350, 175), stamp_ns=1 * MS)  # full right, full "forward" (raw -y), half down (raw +z)
    dec.feed(report(2, 0, 0, -350), stamp_ns=2 * MS)
    r = dec.reading(stamp_ns=3 * MS)
    assert r.engaged and r.stamp_ns == 2 * MS and r.device == "spacemouse"
    # x: +1 -> 0.1 m/s; y: raw -350 flipped -> +0.1 m/s; z: raw +175 flipped, 0.5 after the 0.1 deadband -> (0.5-0.1)/0.9
    assert np.allclose(r.twist[:3], [0.1, 0.1, -0.1 * 0.4 / 0.9])
    assert np.allclose(r.twist[3:], [0.0, 0.0, -0.4])


def test_spacemouse_combined_13_byte_report():
    dec = SpaceMouseDecoder(deadband=0.0)
    dec.feed(report(1, 35, 0, 0, 0, -70, 0), stamp_ns=5 * MS)
    r = dec.reading(stamp_ns=5 * MS)
    assert np.allclose(r.twist, [0.1 * 0.1, 0, 0, 0, 0.4 * 0.2, 0])


def test_spacemouse_deadband_and_engage_release():
    dec = SpaceMouseDecoder(deadband=0.1)
    dec.feed(report(1, 20, -20, 30), stamp_ns=0)  # resting cap noise, under 10 % of full scale
    dec.feed(report(2, 10, 0, -25), stamp_ns=0)
    r = dec.reading(stamp_ns=1 * MS)
    assert not r.engaged and np.all(r.twist == 0)
    dec.feed(report(1, 200, 0, 0), stamp_ns=10 * MS)
    assert dec.reading(stamp_ns=10 * MS).engaged
    dec.feed(report(1, 0, 0, 0), stamp_ns=20 * MS)  # released
    during = dec.reading(stamp_ns=20 * MS + 100 * MS)
    assert during.engaged and np.all(during.twist == 0)  # the latch holds the intervention for 300 ms
    assert not dec.reading(stamp_ns=20 * MS + 310 * MS).engaged


def test_spacemouse_buttons_drive_the_gripper():
    dec = SpaceMouseDecoder()
    dec.feed(bytes([3, 0x01, 0x00]), stamp_ns=0)
    r = dec.reading(stamp_ns=0)
    assert r.gripper == 1.0 and r.engaged and r.buttons[:2] == (True, False)
    dec.feed(bytes([3, 0x02, 0x00]), stamp_ns=1)
    assert dec.reading(stamp_ns=1).gripper == -1.0
    dec.feed(bytes([3, 0x03, 0x00]), stamp_ns=2)
    assert dec.reading(stamp_ns=2).gripper == 0.0  # both: ambiguous, leave the gripper
    dec.feed(bytes([0x17, 0x5A]), stamp_ns=3)  # battery report: ignored
    assert dec.ignored == 1 and dec.reports == 3


def test_spacemouse_absent_is_one_sentence():
    pytest.importorskip("hid", reason="hidapi is not installed (pip install hidapi)")
    from drivers.teleop.spacemouse import find_spacemice, hid_backend

    if find_spacemice(hid_backend()):
        pytest.skip("a SpaceMouse is plugged in")
    with pytest.raises(DeviceNotFoundError, match="no 3Dconnexion SpaceMouse found"):
        SpaceMouse().connect()


def wait_for(device, predicate, timeout_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reading = device.read()
        if predicate(reading):
            return reading
        time.sleep(0.005)
    raise AssertionError(f"no reading matched within {timeout_s} s; last: {reading}")


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "events"
    os.mkfifo(path)
    return str(path)


def test_gamepad_over_a_fifo(fifo):
    with Gamepad(fifo) as pad:
        writer = os.open(fifo, os.O_WRONLY)
        try:
            # the kernel's initial-state burst, then LB (deadman) and the left stick pushed forward
            os.write(writer, b"".join(js_event(0, JS_AXIS | JS_INIT, i) for i in range(8)))
            os.write(writer, js_event(-32767, JS_AXIS, 1, time_ms=10) + js_event(16000, JS_AXIS, 3))
            idle = wait_for(pad, lambda r: pad.events >= 10)
            assert not idle.engaged and np.all(idle.twist == 0)  # stick moved, deadman not held
            os.write(writer, js_event(1, JS_BUTTON, 4, time_ms=20) + js_event(1, JS_BUTTON, 0, time_ms=21))
            r = wait_for(pad, lambda r: r.engaged)
            assert r.twist[0] == pytest.approx(0.1)  # full forward
            assert r.twist[5] == pytest.approx(-0.4 * (16000 / 32767 - 0.15) / 0.85)  # right stick right: yaw right
            assert r.gripper == 1.0 and r.buttons[4]
            assert pad.decoder.device_time_ms == 21  # the controller's own clock rides along
            os.write(writer, js_event(0, JS_BUTTON, 4))
            released = wait_for(pad, lambda r: not r.engaged)
            assert np.all(released.twist == 0) and released.gripper == 0.0
        finally:
            os.close(writer)


def test_keyboard_over_a_fifo(fifo):
    W, A, C = 17, 30, 46
    with Keyboard(fifo) as keyboard:
        writer = os.open(fifo, os.O_WRONLY)
        try:
            os.write(writer, key_event(W, True) + key_event(A, True))
            r = wait_for(keyboard, lambda r: r.engaged and r.twist[1] != 0)
            assert np.allclose(r.twist, [0.05, 0.05, 0, 0, 0, 0])
            os.write(writer, key_event(W, False) + key_event(A, False) + key_event(C, True))
            r = wait_for(keyboard, lambda r: r.gripper == 1.0)
            assert np.all(r.twist == 0) and r.engaged
            os.write(writer, key_event(C, False))
            assert not wait_for(keyboard, lambda r: not r.engaged).engaged
        finally:
            os.close(writer)


def test_missing_event_device_is_one_sentence(tmp_path):
    with pytest.raises(DeviceNotFoundError, match="does not exist"):
        Gamepad(str(tmp_path / "js9")).connect()


def test_scripted_device_wraps_an_expert():
    def expert(obs):
        if obs is None or obs["distance_m"] < 0.01:
            return None
        return np.array([obs["distance_m"], 0, 0, 0, 0, 0]), 1.0

    with ScriptedDevice(expert) as device:
        assert not device.read().engaged
        device.observe({"distance_m": 0.2})
        r = device.read()
        assert r.engaged and r.twist[0] == 0.2 and r.gripper == 1.0
        device.observe({"distance_m": 0.001})
        assert not device.read().engaged
        device.observe({"distance_m": float("nan")})
        assert not device.read().engaged  # nan < 0.01 is False, so the expert answers nan: never sent
