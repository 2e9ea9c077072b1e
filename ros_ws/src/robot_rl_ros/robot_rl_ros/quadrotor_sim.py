"""A simulated Crazyflie behind the real driver: a `RadioLink` that decodes the CRTP packets the driver sends.

`CrazyflieQuadrotor` (geofence, dead-man, emergency stop) runs unchanged on top of it; only the radio is
replaced. The vehicle is kinematic, as the firmware's position controller makes it at these speeds:
velocity follows the setpoint with a first-order lag (`tau_s`), a position setpoint becomes a velocity
toward it (gain 1/s, capped at `max_speed_m_s`), motors off means free fall to the floor. Like the
firmware it cuts the motors when setpoints stop for 500 ms, and an emergency stop latches.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import Counter

import numpy as np

from drivers.quadrotor import crtp
from drivers.quadrotor.base import QuadrotorState

GRAVITY_M_S2 = 9.81
FIRMWARE_SETPOINT_TIMEOUT_S = 0.5  # crtp_commander_high_level / commander.c: no setpoint for 500 ms, motors off


class SimCrazyflieLink:
    def __init__(self, rate_hz: float = 100.0, tau_s: float = 0.15, max_speed_m_s: float = 1.0, start_m=(0.0, 0.0, 0.0)):
        self.period_s, self.tau_s, self.max_speed_m_s = 1.0 / rate_hz, tau_s, max_speed_m_s
        self.position_m = np.array(start_m, np.float64)
        self.velocity_m_s = np.zeros(3)
        self.yaw_deg = 0.0
        self.mode = "off"  # off | position | velocity
        self.target = np.zeros(3)
        self.yaw_rate_deg_s = 0.0
        self.emergency = False
        self.packets: Counter = Counter()  # by kind, as the vehicle received them
        self._last_setpoint_s = -np.inf
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_state = None

    # ---- RadioLink --------------------------------------------------------------------------
    def open(self, on_state) -> None:
        self._on_state = on_state
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sim-crazyflie", daemon=True)
        self._thread.start()

    def send(self, packet: crtp.CrtpPacket) -> None:
        kind = self._decode(packet)
        with self._lock:
            self.packets[kind] += 1

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    # ---- the vehicle -----------------------------------------------------------------------------
    def _decode(self, packet: crtp.CrtpPacket) -> str:
        if packet.port == crtp.PORT_LOCALIZATION and packet.payload[:1] == bytes([crtp.LOCALIZATION_EMERGENCY_STOP]):
            with self._lock:
                self.emergency, self.mode = True, "off"
            return "emergency_stop"
        if packet.port == crtp.PORT_COMMANDER_GENERIC and packet.channel == crtp.GENERIC_META_CHANNEL:
            return "notify_setpoint_stop"
        if packet.port != crtp.PORT_COMMANDER_GENERIC:
            return "other"
        kind = packet.payload[0]
        with self._lock:
            if self.emergency:
                return "ignored_after_emergency"
            self._last_setpoint_s = time.monotonic()
            if kind == crtp.TYPE_STOP:
                self.mode = "off"
                return "stop"
            a, b, c, d = struct.unpack("<ffff", packet.payload[1:17])
            if kind == crtp.TYPE_POSITION:
                self.mode, self.target, self.yaw_deg = "position", np.array([a, b, c]), d
                return "position"
            if kind == crtp.TYPE_VELOCITY_WORLD:
                self.mode, self.target, self.yaw_rate_deg_s = "velocity", np.array([a, b, c]), d
                return "velocity"
        return "unsupported"

    def _step(self, dt_s: float) -> QuadrotorState:
        with self._lock:
            if self.mode != "off" and time.monotonic() - self._last_setpoint_s > FIRMWARE_SETPOINT_TIMEOUT_S:
                self.mode = "off"
            airborne = self.position_m[2] > 0.0
            if self.mode == "off":
                self.velocity_m_s = np.array([0.0, 0.0, self.velocity_m_s[2] - GRAVITY_M_S2 * dt_s]) if airborne else np.zeros(3)
            else:
                wanted = self.target - self.position_m if self.mode == "position" else self.target
                speed = float(np.linalg.norm(wanted))
                if speed > self.max_speed_m_s:
                    wanted = wanted * (self.max_speed_m_s / speed)
                self.velocity_m_s = self.velocity_m_s + (wanted - self.velocity_m_s) * min(1.0, dt_s / self.tau_s)
                if self.mode == "velocity":
                    self.yaw_deg = (self.yaw_deg + self.yaw_rate_deg_s * dt_s + 180.0) % 360.0 - 180.0
            self.position_m = self.position_m + self.velocity_m_s * dt_s
            if self.position_m[2] <= 0.0:  # the floor
                self.position_m[2] = 0.0
                self.velocity_m_s[2] = max(0.0, self.velocity_m_s[2])
            return QuadrotorState(stamp_ns=time.monotonic_ns(), position_m=tuple(map(float, self.position_m)),
                                  velocity_m_s=tuple(map(float, self.velocity_m_s)), roll_deg=0.0, pitch_deg=0.0, yaw_deg=float(self.yaw_deg))

    def _run(self) -> None:
        next_s = time.monotonic()
        while not self._stop.is_set():
            state = self._step(self.period_s)
            self._on_state(state)
            next_s += self.period_s
            self._stop.wait(max(0.0, next_s - time.monotonic()))
