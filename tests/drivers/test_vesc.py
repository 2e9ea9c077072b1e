"""The VESC driver against a byte-accurate fake VESC on a pseudo-terminal.

The fake has its own codec (binascii.crc_hqx, hand-written struct layouts from bldc commands.c),
so the driver's framing and scaling are checked against an independent implementation.
"""

from __future__ import annotations

import binascii
import os
import struct
import threading
import time

import pytest

pytest.importorskip("serial")

from drivers.rc_car import vesc_protocol as vp  # noqa: E402
from drivers.rc_car.vesc import VescConfig, VescRCCar  # noqa: E402
from drivers.errors import DeviceNotFoundError  # noqa: E402


class FakeVesc:
    """Reads frames from the pty master, records commands, answers COMM_GET_VALUES like firmware 5.x."""

    def __init__(self):
        self.master, slave = os.openpty()
        self.port = os.ttyname(slave)
        self._slave = slave
        self.commands: list[tuple[int, float, float]] = []  # (command id, decoded value, host time)
        self.erpm, self.duty, self.volts = 0, 0.0, 16.2
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        buffer = b""
        os.set_blocking(self.master, False)
        while not self._stop.is_set():
            try:
                buffer += os.read(self.master, 4096)
            except BlockingIOError:
                time.sleep(0.002)
                continue
            except OSError:
                return
            while len(buffer) >= 5 and buffer[0] == 2:
                length = buffer[1]
                if len(buffer) < length + 5:
                    break
                payload, crc, end = buffer[2:2 + length], buffer[2 + length:4 + length], buffer[4 + length]
                assert end == 3 and crc == struct.pack(">H", binascii.crc_hqx(payload, 0)), "driver sent a corrupt frame"
                buffer = buffer[5 + length:]
                self._handle(payload)

    def _handle(self, payload: bytes):
        cmd, now = payload[0], time.monotonic()
        if cmd == 4:  # COMM_GET_VALUES
            body = struct.pack(">BhhiiiihihiiiiiiB", 4, 312, 289, 1250, 830, 10, 1240, int(self.duty * 1000),
                               self.erpm, int(self.volts * 10), 1234, 0, 56789, 0, 4242, 4343, 0)
            body += struct.pack(">iBhhhiiB", 0, 0, 0, 0, 0, 0, 0, 0)  # newer-firmware tail, must be ignored
            os.write(self.master, bytes([2, len(body)]) + body + struct.pack(">H", binascii.crc_hqx(body, 0)) + b"\x03")
            return
        if cmd in (5, 6, 7, 8):  # duty ×1e5, current mA, brake mA, erpm
            (raw,) = struct.unpack(">i", payload[1:5])
            value = {5: raw / 1e5, 6: raw / 1e3, 7: raw / 1e3, 8: float(raw)}[cmd]
            if cmd == 8:
                self.erpm = raw
        elif cmd == 12:  # servo position ×1000
            (raw,) = struct.unpack(">h", payload[1:3])
            value = raw / 1000
        else:
            value = float("nan")
        self.commands.append((cmd, value, now))

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def fake():
    vesc = FakeVesc()
    yield vesc
    vesc.close()


def test_crc_and_frame_known_answers():
    assert vp.crc16_xmodem(b"123456789") == 0x31C3  # the CRC-16/XMODEM check value
    # COMM_SET_DUTY 0.5 → 50000 = 0x0000C350
    assert vp.set_duty(0.5) == bytes([2, 5, 5, 0, 0, 0xC3, 0x50]) + struct.pack(">H", binascii.crc_hqx(bytes([5, 0, 0, 0xC3, 0x50]), 0)) + b"\x03"
    long_payload = bytes(300)
    assert vp.frame(long_payload)[:3] == bytes([3, 1, 44])


def test_frame_reader_resynchronises_after_garbage_and_split_reads():
    reader = vp.FrameReader()
    stream = b"\x00\x07junk" + vp.set_rpm(1234) + b"\x02\x05\x08\x00\x00\x00\x01\xff\xff\x03" + vp.set_servo_pos(0.25)
    payloads = []
    for i in range(0, len(stream), 3):  # arrives in 3-byte pieces
        payloads += reader.feed(stream[i:i + 3])
    assert payloads == [bytes([8]) + struct.pack(">i", 1234), bytes([12]) + struct.pack(">h", 250)]


def test_commands_and_telemetry_over_a_pty(fake):
    config = VescConfig(port=fake.port, erpm_per_m_s=4000.0, deadman_timeout_s=1.0, telemetry_hz=50.0)
    with VescRCCar(config) as car:
        car.command(1.5, steer=1.0)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and (car.latest_telemetry() is None or car.latest_telemetry().erpm != 6000):
            time.sleep(0.01)
        telemetry = car.latest_telemetry()
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and fake.commands[-2:] and fake.commands[-1][0] != 12 or fake.commands[-2][0] != 7:
        time.sleep(0.01)  # the fake reads the closing frames on its own thread
    sent = [(c, v) for c, v, _ in fake.commands]
    assert (8, 6000.0) in sent and (12, pytest.approx(0.85)) in sent
    assert telemetry is not None and telemetry.erpm == 6000 and telemetry.speed_m_s == pytest.approx(1.5)
    assert telemetry.input_voltage_v == pytest.approx(16.2) and telemetry.temp_fet_c == pytest.approx(31.2)
    assert telemetry.motor_current_a == pytest.approx(12.5) and telemetry.fault_code == 0
    assert sent[-2:] == [(7, 20.0), (12, 0.5)]  # close() brakes and centres the steering


def test_deadman_brakes_when_commands_stop(fake):
    config = VescConfig(port=fake.port, deadman_timeout_s=0.2, telemetry_hz=50.0)
    with VescRCCar(config) as car:
        time.sleep(0.1)
        assert car.deadman_braking  # braked until the first command
        car.command(2.0, 0.0)
        first_command = time.monotonic()
        for _ in range(5):  # commands at 20 Hz: no brake
            time.sleep(0.05)
            car.command(2.0, 0.0)
        last_command = time.monotonic()
        assert car.deadman_trips == 0 and not any(c == 7 and t > first_command + 0.01 for c, _, t in fake.commands)
        time.sleep(0.5)
        assert car.deadman_braking and car.deadman_trips == 1
        brakes = [t for c, _, t in fake.commands if c == 7 and t > first_command + 0.01]
        assert brakes and 0.2 <= brakes[0] - last_command < 0.3  # timeout + one I/O-loop tick (≈0.01 s)
        car.command(1.0, 0.0)  # commands resume: the brake is released
        assert not car.deadman_braking


def test_missing_port_is_one_clear_sentence():
    with pytest.raises(DeviceNotFoundError, match="plug in the VESC or set the right port"):
        VescRCCar(VescConfig(port="/dev/does-not-exist-vesc")).connect()


def test_sim_twin_deadman_brakes_in_simulated_time():
    from drivers.rc_car.sim import SimRCCar

    with SimRCCar(deadman_timeout_s=0.25) as car:
        for _ in range(10):  # ≈0.8 m down the start straight
            car.command(1.0, 0.0)
            car.advance()
        moving = car.latest_telemetry().speed_m_s
        for _ in range(3):  # 0.3 s without a command: past the timeout
            car.advance()
        assert moving > 0.9 and car.deadman_braking
        for _ in range(10):
            car.advance()
        assert abs(car.latest_telemetry().speed_m_s) < 0.05
