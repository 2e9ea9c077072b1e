"""The simulated twin of an RC car: the bicycle-model car of ``sim2real.rc_car`` behind ``RCCar``.

Time is simulated: ``advance()`` runs one 0.1 s control period. The dead-man timeout is counted
in simulated time and brakes (speed setpoint 0, steering centred) like the VESC driver does.
"""

from __future__ import annotations

import time

import numpy as np

from drivers.errors import DeviceConnectionError
from drivers.rc_car.base import RCCar, RCCarTelemetry
from sim2real.rc_car.dynamics import CarFleet
from sim2real.rc_car.params import CarParams
from sim2real.rc_car.track import DEFAULT_TRACK, get_track


class SimRCCar(RCCar):
    def __init__(self, track: str = DEFAULT_TRACK, params: CarParams = CarParams(), deadman_timeout_s: float = 0.25,
                 erpm_per_m_s: float = 4000.0):
        self.track, self.params = get_track(track), params
        self.deadman_timeout_s, self.erpm_per_m_s = deadman_timeout_s, erpm_per_m_s
        self.fleet: CarFleet | None = None
        self._action = np.zeros(2)
        self._last_command_sim_s = -np.inf
        self.deadman_braking = True

    def connect(self) -> "SimRCCar":
        self.fleet = CarFleet(self.track, 1, self.params)
        self.fleet.place(0, *self.track.pose_at(0.0))
        return self

    def close(self) -> None:
        self.fleet = None

    def command(self, speed_m_s: float, steer: float) -> None:
        fleet = self._connected()
        p = self.params
        speed = float(np.clip(speed_m_s, -p.max_reverse_m_s, p.max_speed_m_s))
        self._action = np.array([speed / (p.max_speed_m_s if speed >= 0 else p.max_reverse_m_s), np.clip(steer, -1, 1)])
        self._last_command_sim_s, self.deadman_braking = fleet.sim_time_s, False

    def brake(self) -> None:
        self._action = np.zeros(2)

    def advance(self) -> None:
        """One control period of simulated time; brakes first if commands stopped."""
        fleet = self._connected()
        if fleet.sim_time_s - self._last_command_sim_s > self.deadman_timeout_s + 1e-9:
            self.deadman_braking = True
            self.brake()
        fleet.step(self._action[None])

    def latest_telemetry(self) -> RCCarTelemetry | None:
        if self.fleet is None:
            return None
        speed = float(self.fleet.vx_m_s[0])
        return RCCarTelemetry(stamp_ns=time.monotonic_ns(), speed_m_s=speed, erpm=speed * self.erpm_per_m_s,
                              duty=float(self._action[0]), motor_current_a=0.0, input_voltage_v=16.8, temp_fet_c=25.0,
                              fault_code=0)

    def _connected(self) -> CarFleet:
        if self.fleet is None:
            raise DeviceConnectionError("the simulated RC car is not connected; call connect() first.")
        return self.fleet
