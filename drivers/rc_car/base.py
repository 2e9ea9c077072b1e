"""The ``RCCar`` device interface and its timestamped telemetry reading."""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass(frozen=True)
class RCCarTelemetry:
    stamp_ns: int  # host monotonic clock when the reading arrived
    speed_m_s: float  # from the motor's electrical rpm and the drivetrain ratio
    erpm: float
    duty: float
    motor_current_a: float
    input_voltage_v: float
    temp_fet_c: float
    fault_code: int


class RCCar(abc.ABC):
    """Sends [speed, steer] commands to an RC car and reads its telemetry; real and simulated alike."""

    @abc.abstractmethod
    def connect(self) -> "RCCar": ...

    @abc.abstractmethod
    def close(self) -> None:
        """Brake, centre the steering and release the device."""

    @abc.abstractmethod
    def command(self, speed_m_s: float, steer: float) -> None:
        """``steer`` in [-1, 1] (left positive); both must be re-sent faster than the dead-man timeout."""

    @abc.abstractmethod
    def brake(self) -> None: ...

    @abc.abstractmethod
    def latest_telemetry(self) -> RCCarTelemetry | None: ...

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()
