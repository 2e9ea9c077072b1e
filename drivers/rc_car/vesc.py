"""An RC car driven by a VESC speed controller over a serial port (pyserial, imported lazily).

Speed goes out as COMM_SET_RPM (electrical rpm) or COMM_SET_DUTY, steering as COMM_SET_SERVO_POS
(the VESC's servo output). One I/O thread polls COMM_GET_VALUES for telemetry and is the dead-man:
when no command arrived for ``deadman_timeout_s`` it sends COMM_SET_CURRENT_BRAKE and centres
the steering, and keeps doing so until commands resume.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from drivers.errors import DeviceConnectionError, DeviceNotFoundError, require
from drivers.rc_car import vesc_protocol as vp
from drivers.rc_car.base import RCCar, RCCarTelemetry


@dataclass(frozen=True)
class VescConfig:
    port: str = "/dev/ttyACM0"
    baudrate: int = 115200
    speed_mode: str = "rpm"  # "rpm": closed-loop speed on the VESC; "duty": open loop
    erpm_per_m_s: float = 4000.0  # motor pole pairs × gear ratio / wheel circumference (calibrate per car)
    max_speed_m_s: float = 5.0
    servo_centre: float = 0.5
    servo_range: float = 0.35  # servo position change at steer = ±1
    servo_left_positive: bool = True
    deadman_timeout_s: float = 0.25  # 2.5 control periods at 10 Hz
    brake_current_a: float = 20.0
    telemetry_hz: float = 50.0


class VescRCCar(RCCar):
    def __init__(self, config: VescConfig = VescConfig()):
        if config.speed_mode not in ("rpm", "duty"):
            raise ValueError(f"speed_mode must be 'rpm' or 'duty', not {config.speed_mode!r}.")
        self.config = config
        self._serial = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_command_s = -np.inf
        self._telemetry: RCCarTelemetry | None = None
        self.deadman_braking = False
        self.deadman_trips = 0

    def connect(self) -> "VescRCCar":
        serial = require("serial", "pip install pyserial")
        try:
            self._serial = serial.Serial(self.config.port, self.config.baudrate, timeout=0)
        except serial.SerialException as exc:
            raise DeviceNotFoundError(
                f"cannot open VESC serial port {self.config.port!r} ({exc}); plug in the VESC or set the right port.") from None
        self._stop.clear()
        self.deadman_braking = True  # braked until the first command arrives
        self._thread = threading.Thread(target=self._io_loop, name="vesc-io", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._serial is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        try:
            self._write(vp.set_current_brake(self.config.brake_current_a) + vp.set_servo_pos(self.config.servo_centre))
            self._serial.flush()
        finally:
            self._serial.close()
            self._serial = None

    def command(self, speed_m_s: float, steer: float) -> None:
        c = self.config
        speed = float(np.clip(speed_m_s, -c.max_speed_m_s, c.max_speed_m_s))
        motor = vp.set_rpm(speed * c.erpm_per_m_s) if c.speed_mode == "rpm" else vp.set_duty(speed / c.max_speed_m_s)
        with self._lock:
            self._last_command_s = time.monotonic()
            self.deadman_braking = False
        self._write(motor + vp.set_servo_pos(self._servo(steer)))

    def brake(self) -> None:
        self._write(vp.set_current_brake(self.config.brake_current_a) + vp.set_servo_pos(self.config.servo_centre))

    def latest_telemetry(self) -> RCCarTelemetry | None:
        return self._telemetry

    def _servo(self, steer: float) -> float:
        c = self.config
        sign = 1.0 if c.servo_left_positive else -1.0
        return float(np.clip(c.servo_centre + sign * c.servo_range * np.clip(steer, -1.0, 1.0), 0.0, 1.0))

    def _write(self, data: bytes) -> None:
        if self._serial is None:
            raise DeviceConnectionError("the VESC is not connected; call connect() first.")
        with self._lock:
            self._serial.write(data)

    def _io_loop(self) -> None:
        reader, period = vp.FrameReader(), 1.0 / self.config.telemetry_hz
        next_poll = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                expired = now - self._last_command_s > self.config.deadman_timeout_s
                newly = expired and not self.deadman_braking
                self.deadman_braking = self.deadman_braking or expired
            if newly:
                self.deadman_trips += 1
                self.brake()
            if now >= next_poll:
                if expired:
                    self.brake()
                self._write(vp.get_values())
                next_poll = now + period
            with self._lock:
                data = self._serial.read(4096) if self._serial is not None else b""
            for payload in reader.feed(data):
                if payload[0] == vp.COMM_GET_VALUES:
                    self._on_values(vp.decode_values(payload))
            time.sleep(min(period, self.config.deadman_timeout_s) / 5)

    def _on_values(self, values: vp.VescValues) -> None:
        self._telemetry = RCCarTelemetry(
            stamp_ns=time.monotonic_ns(),
            speed_m_s=values.erpm / self.config.erpm_per_m_s,
            erpm=values.erpm,
            duty=values.duty,
            motor_current_a=values.motor_current_a,
            input_voltage_v=values.input_voltage_v,
            temp_fet_c=values.temp_fet_c,
            fault_code=values.fault_code,
        )
