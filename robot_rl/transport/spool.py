"""The actor's spool: every transition is written here before it is sent, and kept until acknowledged.

Layout: ``RUN/spool/<actor_id>/<actor_session>/seg_<first seq>.spool``, each segment an append-only
record file of the transition messages exactly as sent. A segment is deleted once the learner has
acknowledged all of it (or renamed ``.acked`` when ``keep_acked``, for audits). A new actor process
finds the previous sessions' segments and resends them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from robot_rl.transport.records import RecordFile, read_record_at, scan_records
from robot_rl.transport.wire import decode

SEGMENT_TRANSITIONS = 256


class SessionSpool:
    def __init__(self, directory: Path, session: str, keep_acked: bool = False):
        self.directory = Path(directory) / session
        self.directory.mkdir(parents=True, exist_ok=True)
        self.session, self.keep_acked = session, keep_acked
        self.index: dict[int, tuple[Path, int, int]] = {}  # seq -> (segment, offset, size)
        self.segments: dict[Path, int] = {}  # segment -> last seq in it
        self.first_seq = 0  # lowest seq not known to be acknowledged
        self.next_seq = 0  # seq of the next transition produced
        self._file: RecordFile | None = None
        for path in sorted(self.directory.glob("seg_*.spool")):
            self._recover(path)

    def _recover(self, path: Path) -> None:
        last = None
        for offset, size, frames in scan_records(path):
            _, header, _, _ = decode(frames)
            seq = int(header["seq"])
            self.index[seq] = (path, offset, size)
            last = seq
        if last is None:
            path.unlink()
            return
        RecordFile(path).close()  # truncates a record torn by the kill
        self.segments[path] = last
        self.first_seq = min(self.index)
        self.next_seq = max(self.next_seq, last + 1)

    @property
    def backlog(self) -> int:
        return self.next_seq - self.first_seq

    def append(self, seq: int, frames: list[bytes]) -> None:
        if seq != self.next_seq:
            raise ValueError(f"spool {self.directory}: expected seq {self.next_seq}, got {seq}")
        if self._file is None or seq % SEGMENT_TRANSITIONS == 0:
            if self._file is not None:
                self._file.close()
            self._file = RecordFile(self.directory / f"seg_{seq:012d}.spool")
        offset, size = self._file.append(frames)
        self.index[seq] = (self._file.path, offset, size)
        self.segments[self._file.path] = seq
        self.next_seq = seq + 1

    def read(self, seq: int) -> list[bytes]:
        path, offset, size = self.index[seq]
        return read_record_at(path, offset, size)

    def acknowledge(self, next_needed: int, final: bool = False) -> None:
        """The learner holds every seq below ``next_needed`` durably: drop the segments it covers.

        The segment being written stays until it is full (or ``final``), so appends never reopen a removed file.
        """
        self.first_seq = max(self.first_seq, min(next_needed, self.next_seq))
        current = self._file.path if self._file is not None else None
        for path, last in list(self.segments.items()):
            full = last % SEGMENT_TRANSITIONS == SEGMENT_TRANSITIONS - 1
            if last >= self.first_seq or (path == current and not (full or final)):
                continue
            if path == current:
                self._file.close()
                self._file = None
            if self.keep_acked:
                path.rename(path.with_suffix(".acked"))
            else:
                path.unlink(missing_ok=True)
            del self.segments[path]
        for seq in [s for s in self.index if s < self.first_seq]:
            del self.index[seq]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def remove_if_empty(self) -> bool:
        if self.segments or self.keep_acked:
            return False
        self.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        return True


def previous_sessions(directory: Path, keep_acked: bool = False) -> list[SessionSpool]:
    """Spools left by earlier actor processes that still hold transitions; empty ones are removed."""
    found = []
    directory = Path(directory)
    if not directory.is_dir():
        return found
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        spool = SessionSpool(directory, folder.name, keep_acked)
        spool.close()
        if spool.segments:
            found.append(spool)
        elif not keep_acked:
            shutil.rmtree(folder, ignore_errors=True)
    return found


def audit_spool(directory: Path) -> dict[tuple[str, int], list[bytes]]:
    """Every transition ever spooled under ``directory`` (needs ``keep_acked``): (session, seq) -> frames."""
    found = {}
    for path in sorted(Path(directory).glob("*/seg_*")):
        for _, _, frames in scan_records(path):
            _, header, _, _ = decode(frames)
            found[(str(header["actor_session"]), int(header["seq"]))] = [bytes(f) for f in frames]
    return found
