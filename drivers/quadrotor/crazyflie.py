"""Crazyflie backend: setpoints and emergency stop as CRTP packets over a radio link, state from logging.

The packets are encoded here (``crtp.py``); cflib is only the radio, imported lazily inside
``CflibLink``. Safety does not depend on the operator: every setpoint goes through the geofence,
a dead-man watchdog sends the stop setpoint when setpoints stop, and a state reading outside the
fence, too tilted or not finite triggers the emergency stop, which latches.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol

from drivers.errors import DeviceConnectionError, DeviceError, require
from drivers.quadrotor import crtp
from drivers.quadrotor.base import Quadrotor, QuadrotorState
from drivers.quadrotor.safety import QuadrotorSafety, QuadrotorSafetyConfig
from drivers.safety import Watchdog

DEFAULT_URI = "radio://0/80/2M/E7E7E7E7E7"
STATE_LOG_PERIOD_MS = 10


class RadioLink(Protocol):
    """Sends CRTP packets and delivers state readings; ``CflibLink`` on hardware."""

    def open(self, on_state: Callable[[QuadrotorState], None]) -> None: ...

    def send(self, packet: crtp.CrtpPacket) -> None: ...

    def close(self) -> None: ...


class EmergencyStopped(DeviceError):
    """The Crazyflie was emergency-stopped; it takes no setpoints until it is power-cycled."""


class CflibLink:
    """The Crazyradio through cflib: raw CRTP packets out, two log blocks (position+velocity, attitude) in."""

    def __init__(self, uri: str = DEFAULT_URI):
        self.uri = uri
        self._scf = None
        self._partial: dict = {}

    def open(self, on_state: Callable[[QuadrotorState], None]) -> None:
        crtp_drivers = require("cflib.crtp", "pip install cflib")
        crazyflie = require("cflib.crazyflie", "pip install cflib")
        sync = require("cflib.crazyflie.syncCrazyflie", "pip install cflib")
        log = require("cflib.crazyflie.log", "pip install cflib")
        crtp_drivers.init_drivers()
        try:
            self._scf = sync.SyncCrazyflie(self.uri, cf=crazyflie.Crazyflie(rw_cache="./cache"))
            self._scf.open_link()
        except Exception as error:  # cflib raises bare Exceptions for a missing radio or vehicle
            raise DeviceConnectionError(f"cannot reach the Crazyflie at {self.uri} ({error}); check the Crazyradio, "
                                        "the vehicle's power and the URI (channel/address).") from None
        # a log block carries at most 26 bytes: 6 floats, then 3 floats
        blocks = [("stateEstimate.x", "stateEstimate.y", "stateEstimate.z",
                   "stateEstimate.vx", "stateEstimate.vy", "stateEstimate.vz"),
                  ("stateEstimate.roll", "stateEstimate.pitch", "stateEstimate.yaw")]
        for index, names in enumerate(blocks):
            config = log.LogConfig(name=f"robot_rl_state_{index}", period_in_ms=STATE_LOG_PERIOD_MS)
            for name in names:
                config.add_variable(name, "float")
            self._scf.cf.log.add_config(config)
            config.data_received_cb.add_callback(lambda _ts, data, _cfg, cb=on_state: self._on_log(data, cb))
            config.start()

    def _on_log(self, data: dict, on_state) -> None:
        self._partial.update(data)
        if "stateEstimate.roll" in data and "stateEstimate.x" in self._partial:
            p = self._partial
            on_state(QuadrotorState(
                stamp_ns=time.monotonic_ns(),
                position_m=(p["stateEstimate.x"], p["stateEstimate.y"], p["stateEstimate.z"]),
                velocity_m_s=(p["stateEstimate.vx"], p["stateEstimate.vy"], p["stateEstimate.vz"]),
                roll_deg=p["stateEstimate.roll"], pitch_deg=p["stateEstimate.pitch"], yaw_deg=p["stateEstimate.yaw"],
            ))

    def send(self, packet: crtp.CrtpPacket) -> None:
        stack = require("cflib.crtp.crtpstack", "pip install cflib")
        pk = stack.CRTPPacket()
        pk.set_header(packet.port, packet.channel)
        pk.data = packet.payload
        self._scf.cf.send_packet(pk)

    def close(self) -> None:
        if self._scf is not None:
            self._scf.close_link()
            self._scf = None


class CrazyflieQuadrotor(Quadrotor):
    def __init__(self, uri: str = DEFAULT_URI, safety: QuadrotorSafetyConfig = QuadrotorSafetyConfig(),
                 link: RadioLink | None = None, watchdog_period_ms: float = 10.0):
        self.uri = uri
        self.safety = QuadrotorSafety(safety)
        self.link = link if link is not None else CflibLink(uri)
        self._lock = threading.Lock()
        self._state: QuadrotorState | None = None
        self._last_setpoint_ns: int | None = None
        self._watchdog = Watchdog(safety.deadman_timeout_ms, self._on_deadman, period_ms=watchdog_period_ms)
        self.emergency_reason: str | None = None
        self.deadman_stops = 0
        self._connected = False

    # ---- lifecycle ------------------------------------------------------------------------
    def connect(self) -> "CrazyflieQuadrotor":
        self.link.open(self._on_state)
        self._watchdog.start()
        self._connected = True
        return self

    def close(self) -> None:
        if not self._connected:
            return
        self._watchdog.stop()
        if self.emergency_reason is None:
            self._send(crtp.stop_setpoint())
            self._send(crtp.notify_setpoint_stop())
        self.link.close()
        self._connected = False

    # ---- commands -------------------------------------------------------------------------
    def send_position(self, position_m, yaw_deg: float = 0.0) -> None:
        x, y, z = self.safety.clamp_position(position_m)
        self._send_setpoint(crtp.position_setpoint(x, y, z, yaw_deg))

    def send_velocity(self, velocity_m_s, yaw_rate_deg_s: float = 0.0) -> None:
        state = self.latest_state()
        vx, vy, vz = self.safety.clamp_velocity(velocity_m_s, None if state is None else state.position_m)
        self._send_setpoint(crtp.velocity_world_setpoint(vx, vy, vz, yaw_rate_deg_s))

    def stop(self) -> None:
        with self._lock:
            self._last_setpoint_ns = None  # the dead-man has nothing left to guard
        self._send(crtp.stop_setpoint())

    def emergency_stop(self, reason: str = "requested") -> None:
        with self._lock:
            first = self.emergency_reason is None
            self.emergency_reason = self.emergency_reason or reason
            self._last_setpoint_ns = None
        if first:
            self.link.send(crtp.emergency_stop())

    def latest_state(self) -> QuadrotorState | None:
        with self._lock:
            return self._state

    # ---- internals ------------------------------------------------------------------------
    def _send_setpoint(self, packet: crtp.CrtpPacket) -> None:
        if self.emergency_reason is not None:
            raise EmergencyStopped(f"the Crazyflie at {self.uri} was emergency-stopped ({self.emergency_reason}); "
                                   "power-cycle it and reconnect before sending setpoints.")
        with self._lock:
            self._last_setpoint_ns = time.monotonic_ns()
        self._watchdog.kick()
        self._send(packet)

    def _send(self, packet: crtp.CrtpPacket) -> None:
        if self.emergency_reason is not None and packet.port != crtp.PORT_LOCALIZATION:
            return
        self.link.send(packet)

    def _on_state(self, state: QuadrotorState) -> None:
        with self._lock:
            self._state = state
        reason = self.safety.state_violation(state.position_m, state.roll_deg, state.pitch_deg)
        if reason is not None:
            self.emergency_stop(reason)

    def _on_deadman(self) -> None:
        with self._lock:
            expired = self.safety.deadman_expired(self._last_setpoint_ns, time.monotonic_ns())
            if expired:
                self._last_setpoint_ns = None
        if expired:
            self.deadman_stops += 1
            self._send(crtp.stop_setpoint())
