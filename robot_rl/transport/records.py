"""Length- and CRC-framed records on disk, for the actor's spool and the learner's replay chunks.

A record is ``<u32 payload length><u32 crc32>`` followed by the payload: the frame count, each
frame's length, then the frames of one wire message (msgpack header + raw buffers). A record
cut short by a kill fails its length or CRC check and ends the valid prefix of the file.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Iterator

_HEAD = struct.Struct("<II")
# Header fields a transition record carries in human-in-the-loop sessions (the `policy_action` array rides
# along); a record without them (older spools and stores, sessions without interventions) reads as these.
INTERVENTION_FIELDS = {"intervened": False, "device": "", "takeover": False, "safe_hold": False}
MAX_RECORD_BYTES = 512 * 1024 * 1024


def record_parts(frames: list) -> list:
    """The record as a list of buffers (header, lengths, frames), so that it is written without a join copy."""
    lengths = struct.pack(f"<I{len(frames)}Q", len(frames), *(memoryview(f).nbytes for f in frames))
    crc, size = zlib.crc32(lengths), len(lengths)
    for frame in frames:
        crc = zlib.crc32(frame, crc)
        size += memoryview(frame).nbytes
    return [_HEAD.pack(size, crc), lengths, *frames]


def pack_record(frames: list) -> bytes:
    return b"".join(bytes(p) for p in record_parts(frames))


def unpack_payload(payload: bytes | memoryview) -> list[bytes]:
    view = memoryview(payload)
    (count,) = struct.unpack_from("<I", view, 0)
    lengths = struct.unpack_from(f"<{count}Q", view, 4)
    offset, frames = 4 + 8 * count, []
    for length in lengths:
        frames.append(view[offset:offset + length])
        offset += length
    return frames


def scan_records(path: Path) -> Iterator[tuple[int, int, list[bytes]]]:
    """Yield ``(offset, record_bytes, frames)`` for the valid prefix of ``path``."""
    data = Path(path).read_bytes()
    offset = 0
    while offset + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, offset)
        end = offset + _HEAD.size + length
        if length > MAX_RECORD_BYTES or end > len(data):
            return
        payload = memoryview(data)[offset + _HEAD.size:end]
        if zlib.crc32(payload) != crc:
            return
        yield offset, end - offset, unpack_payload(payload)
        offset = end


def valid_length(path: Path) -> int:
    end = 0
    for offset, size, _ in scan_records(path):
        end = offset + size
    return end


def read_record_at(path: Path, offset: int, size: int) -> list[bytes]:
    with open(path, "rb") as handle:
        handle.seek(offset)
        raw = handle.read(size)
    return unpack_payload(memoryview(raw)[_HEAD.size:])


class RecordFile:
    """An append-only record file; one ``os.write`` per record, ``sync`` makes it durable."""

    def __init__(self, path: Path):
        self.path = Path(path)
        existing = valid_length(self.path) if self.path.exists() else 0
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, existing)  # drop a record torn by a kill
        os.lseek(self.fd, existing, os.SEEK_SET)
        self.size = existing

    def append(self, frames: list) -> tuple[int, int]:
        parts = record_parts(frames)
        total = sum(memoryview(p).nbytes for p in parts)
        written = os.writev(self.fd, parts)
        if written < total:  # a short write: finish the rest byte-exactly
            rest = memoryview(b"".join(bytes(p) for p in parts))[written:]
            while rest:
                rest = rest[os.write(self.fd, rest):]
        offset = self.size
        self.size += total
        return offset, total

    def sync(self) -> None:
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
