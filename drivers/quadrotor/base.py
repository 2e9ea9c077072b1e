"""The ``Quadrotor`` device interface and its timestamped state reading."""

from __future__ import annotations

import abc
from dataclasses import dataclass


@dataclass(frozen=True)
class QuadrotorState:
    stamp_ns: int  # host monotonic clock when the reading arrived
    position_m: tuple[float, float, float]  # world frame, z up
    velocity_m_s: tuple[float, float, float]
    roll_deg: float
    pitch_deg: float
    yaw_deg: float


class Quadrotor(abc.ABC):
    """Streams setpoints to a quadrotor and reads its state; real and simulated backends alike."""

    @abc.abstractmethod
    def connect(self) -> "Quadrotor": ...

    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def send_position(self, position_m, yaw_deg: float = 0.0) -> None: ...

    @abc.abstractmethod
    def send_velocity(self, velocity_m_s, yaw_rate_deg_s: float = 0.0) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None:
        """Motors off through the normal command path (recoverable)."""

    @abc.abstractmethod
    def emergency_stop(self, reason: str = "requested") -> None:
        """Motors off at once; the vehicle refuses further setpoints until it is restarted."""

    @abc.abstractmethod
    def latest_state(self) -> QuadrotorState | None: ...

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()
