"""The VESC UART packet protocol (bldc firmware ``packet.c`` / ``commands.c``), no dependencies.

Frame: start byte 2 (payload < 256 bytes, 1 length byte) or 3 (2 length bytes, big-endian),
payload, CRC16-XMODEM of the payload (big-endian), end byte 3. The payload's first byte is the
command id; numbers are big-endian integers with fixed scales.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

COMM_FW_VERSION = 0
COMM_GET_VALUES = 4
COMM_SET_DUTY = 5
COMM_SET_CURRENT = 6
COMM_SET_CURRENT_BRAKE = 7
COMM_SET_RPM = 8
COMM_SET_SERVO_POS = 12
COMM_ALIVE = 30

MAX_PAYLOAD = 4096  # bldc PACKET_MAX_PL_LEN


class VescProtocolError(ValueError):
    """Bytes that are not a VESC frame (bad start/end byte, length or checksum)."""


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def frame(payload: bytes) -> bytes:
    if not 0 < len(payload) <= MAX_PAYLOAD:
        raise VescProtocolError(f"VESC payloads are 1..{MAX_PAYLOAD} bytes, got {len(payload)}.")
    head = bytes([2, len(payload)]) if len(payload) < 256 else bytes([3]) + struct.pack(">H", len(payload))
    return head + payload + struct.pack(">H", crc16_xmodem(payload)) + b"\x03"


class FrameReader:
    """Reassembles frames from a byte stream; skips garbage and frames with a bad checksum.

    A stray start byte can announce a long frame that never comes; a complete valid frame
    found later in the buffer wins over such a pending one, so the reader cannot stall.
    """

    def __init__(self):
        self.buffer = bytearray()

    def _parse_at(self, i: int):
        """(payload, end) for a valid frame at i, "incomplete", or None when i starts no frame."""
        b = self.buffer
        if b[i] not in (2, 3):
            return None
        header = 2 if b[i] == 2 else 3
        if len(b) < i + header:
            return "incomplete"
        length = b[i + 1] if header == 2 else struct.unpack(">H", b[i + 1:i + 3])[0]
        if not 0 < length <= MAX_PAYLOAD:
            return None
        end = i + header + length + 3
        if len(b) < end:
            return "incomplete"
        payload = bytes(b[i + header:i + header + length])
        if b[end - 1] != 3 or struct.unpack(">H", b[end - 3:end - 1])[0] != crc16_xmodem(payload):
            return None
        return payload, end

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        payloads = []
        while self.buffer:
            found = self._parse_at(0)
            if found is None:
                del self.buffer[0]
                continue
            if found == "incomplete":
                later = next((j for j in range(1, len(self.buffer)) if isinstance(self._parse_at(j), tuple)), None)
                if later is None:
                    break
                del self.buffer[:later]
                continue
            payload, end = found
            del self.buffer[:end]
            payloads.append(payload)
        return payloads


def set_duty(duty: float) -> bytes:
    return frame(struct.pack(">Bi", COMM_SET_DUTY, int(round(duty * 100_000))))


def set_current(current_a: float) -> bytes:
    return frame(struct.pack(">Bi", COMM_SET_CURRENT, int(round(current_a * 1000))))


def set_current_brake(current_a: float) -> bytes:
    return frame(struct.pack(">Bi", COMM_SET_CURRENT_BRAKE, int(round(current_a * 1000))))


def set_rpm(erpm: float) -> bytes:
    return frame(struct.pack(">Bi", COMM_SET_RPM, int(round(erpm))))


def set_servo_pos(position: float) -> bytes:
    """``position`` in [0, 1] (0.5 = centre)."""
    return frame(struct.pack(">Bh", COMM_SET_SERVO_POS, int(round(position * 1000))))


def get_values() -> bytes:
    return frame(bytes([COMM_GET_VALUES]))


def alive() -> bytes:
    return frame(bytes([COMM_ALIVE]))


@dataclass(frozen=True)
class VescValues:
    """COMM_GET_VALUES reply (fields common to firmware 3.x-6.x, in order)."""

    temp_fet_c: float
    temp_motor_c: float
    motor_current_a: float
    input_current_a: float
    current_d_a: float
    current_q_a: float
    duty: float
    erpm: float
    input_voltage_v: float
    amp_hours: float
    amp_hours_charged: float
    watt_hours: float
    watt_hours_charged: float
    tachometer: int
    tachometer_abs: int
    fault_code: int


# (struct format, divisor) per field of VescValues, from bldc commands.c COMM_GET_VALUES
VALUES_LAYOUT = (
    ("h", 10), ("h", 10), ("i", 100), ("i", 100), ("i", 100), ("i", 100), ("h", 1000), ("i", 1), ("h", 10),
    ("i", 10_000), ("i", 10_000), ("i", 10_000), ("i", 10_000), ("i", 1), ("i", 1), ("B", 1),
)
_VALUES_STRUCT = struct.Struct(">" + "".join(f for f, _ in VALUES_LAYOUT))


def decode_values(payload: bytes) -> VescValues:
    """Decode a COMM_GET_VALUES reply payload (command byte first); newer firmware's extra fields are ignored."""
    if not payload or payload[0] != COMM_GET_VALUES:
        raise VescProtocolError("not a COMM_GET_VALUES reply.")
    if len(payload) - 1 < _VALUES_STRUCT.size:
        raise VescProtocolError(f"COMM_GET_VALUES reply has {len(payload) - 1} bytes, needs at least {_VALUES_STRUCT.size}.")
    raw = _VALUES_STRUCT.unpack_from(payload, 1)
    values = [r / d if d != 1 else r for r, (_, d) in zip(raw, VALUES_LAYOUT)]
    return VescValues(*values)
