"""CRTP packets the Crazyflie firmware understands, encoded byte for byte (no cflib needed).

Layouts follow the Crazyflie firmware and cflib (``crtp.h``, ``crtp_commander_generic.c``,
``crtp_localization_service.c``; cflib ``commander.py``, ``localization.py``): one header byte
``port << 4 | 0b11 << 2 | channel`` (the two link bits are set, as cflib sends them), then a
little-endian payload of at most 30 bytes.
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

MAX_PAYLOAD_BYTES = 30

PORT_COMMANDER = 0x03  # legacy roll/pitch/yaw-rate/thrust setpoint
PORT_LOCALIZATION = 0x06
PORT_COMMANDER_GENERIC = 0x07

GENERIC_SETPOINT_CHANNEL = 0
GENERIC_META_CHANNEL = 1
LOCALIZATION_GENERIC_CHANNEL = 1

TYPE_STOP = 0
TYPE_VELOCITY_WORLD = 1
TYPE_HOVER = 5
TYPE_POSITION = 7
META_NOTIFY_SETPOINT_STOP = 0
LOCALIZATION_EMERGENCY_STOP = 3
LOCALIZATION_EMERGENCY_STOP_WATCHDOG = 4

THRUST_MAX = 0xFFFF  # the legacy setpoint's thrust is a uint16


class CrtpPacket(NamedTuple):
    port: int
    channel: int
    payload: bytes

    @property
    def header(self) -> int:
        return ((self.port & 0x0F) << 4) | (0x3 << 2) | (self.channel & 0x03)

    def to_bytes(self) -> bytes:
        """The packet as it goes over the radio: header byte + payload."""
        return bytes([self.header]) + self.payload


def _packet(port: int, channel: int, payload: bytes) -> CrtpPacket:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"CRTP payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}.")
    return CrtpPacket(port, channel, payload)


def _finite(*values: float) -> tuple[float, ...]:
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"setpoint contains NaN or inf: {values}; refusing to send it to the Crazyflie.")
    return values


def attitude_setpoint(roll_deg: float, pitch_deg: float, yaw_rate_deg_s: float, thrust: int) -> CrtpPacket:
    """Legacy commander setpoint; the firmware expects pitch negated (cflib ``send_setpoint``)."""
    roll_deg, pitch_deg, yaw_rate_deg_s = _finite(roll_deg, pitch_deg, yaw_rate_deg_s)
    if not 0 <= int(thrust) <= THRUST_MAX:
        raise ValueError(f"thrust {thrust} is outside 0..{THRUST_MAX}.")
    return _packet(PORT_COMMANDER, 0, struct.pack("<fffH", roll_deg, -pitch_deg, yaw_rate_deg_s, int(thrust)))


def position_setpoint(x_m: float, y_m: float, z_m: float, yaw_deg: float) -> CrtpPacket:
    return _packet(PORT_COMMANDER_GENERIC, GENERIC_SETPOINT_CHANNEL,
                   struct.pack("<Bffff", TYPE_POSITION, *_finite(x_m, y_m, z_m, yaw_deg)))


def velocity_world_setpoint(vx_m_s: float, vy_m_s: float, vz_m_s: float, yaw_rate_deg_s: float) -> CrtpPacket:
    return _packet(PORT_COMMANDER_GENERIC, GENERIC_SETPOINT_CHANNEL,
                   struct.pack("<Bffff", TYPE_VELOCITY_WORLD, *_finite(vx_m_s, vy_m_s, vz_m_s, yaw_rate_deg_s)))


def hover_setpoint(vx_m_s: float, vy_m_s: float, yaw_rate_deg_s: float, z_m: float) -> CrtpPacket:
    """Body-frame velocity at a fixed height (cflib ``send_hover_setpoint``)."""
    return _packet(PORT_COMMANDER_GENERIC, GENERIC_SETPOINT_CHANNEL,
                   struct.pack("<Bffff", TYPE_HOVER, *_finite(vx_m_s, vy_m_s, yaw_rate_deg_s, z_m)))


def stop_setpoint() -> CrtpPacket:
    """Motors off now (cflib ``send_stop_setpoint``)."""
    return _packet(PORT_COMMANDER_GENERIC, GENERIC_SETPOINT_CHANNEL, struct.pack("<B", TYPE_STOP))


def notify_setpoint_stop(remain_valid_ms: int = 0) -> CrtpPacket:
    """Hands control back to the high-level commander after streaming setpoints."""
    return _packet(PORT_COMMANDER_GENERIC, GENERIC_META_CHANNEL, struct.pack("<BI", META_NOTIFY_SETPOINT_STOP, remain_valid_ms))


def emergency_stop() -> CrtpPacket:
    """Localization-service emergency stop: the firmware cuts the motors and needs a reboot."""
    return _packet(PORT_LOCALIZATION, LOCALIZATION_GENERIC_CHANNEL, struct.pack("<B", LOCALIZATION_EMERGENCY_STOP))


def emergency_stop_watchdog() -> CrtpPacket:
    """Arms the firmware's own emergency-stop watchdog: it stops the motors if these stop arriving."""
    return _packet(PORT_LOCALIZATION, LOCALIZATION_GENERIC_CHANNEL,
                   struct.pack("<B", LOCALIZATION_EMERGENCY_STOP_WATCHDOG))
