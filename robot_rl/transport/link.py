"""The actor's end of the link: spool first, then send; resend whatever the learner has not acknowledged.

Messages to the learner: ``transition`` (one per env step), ``hello`` (a heartbeat naming this
actor's spooled sessions), and best-effort ``episode``/``eval``/``done``. From the learner:
``ack``/``status`` (the next seq it needs per session, after a durable write), ``nack`` (a gap:
resend from a seq) and ``weights``. ZeroMQ reconnects with backoff by itself; when the learner
moves to another endpoint (``endpoints.json`` changes) the link reconnects there.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import zmq

from robot_rl.transport.keys import keys_dir, make_curve_client
from robot_rl.transport.spool import SessionSpool, previous_sessions
from robot_rl.transport.wire import WireError, decode, encode

SEND_WINDOW = 512  # transitions in flight per session before waiting for acks
HEARTBEAT_S = 0.5
RESEND_AFTER_S = 2.0  # no ack progress for this long: resend from the first unacknowledged seq
RECONNECT_IVL_MS, RECONNECT_IVL_MAX_MS = 100, 2000  # ZeroMQ's exponential reconnect backoff


def read_endpoint(run_root: Path) -> str | None:
    try:
        return json.loads((Path(run_root) / "endpoints.json").read_text())["transitions"]
    except (OSError, ValueError, KeyError):
        return None


class ActorLink:
    def __init__(self, run_root: Path, actor_id: str, context: zmq.Context, endpoint: str | None = None,
                 keep_acked: bool = False, client: str = "actor"):
        self.run_root, self.actor_id, self.context = Path(run_root), actor_id, context
        self.fixed_endpoint, self.client = endpoint, client
        self.session = uuid.uuid4().hex[:12]
        spool_dir = self.run_root / "spool" / actor_id
        self.spools: dict[str, SessionSpool] = {s.session: s for s in previous_sessions(spool_dir, keep_acked)}
        self.previous = list(self.spools)
        self.spool = SessionSpool(spool_dir, self.session, keep_acked)
        self.spools[self.session] = self.spool
        self.cursor = {s: sp.first_seq for s, sp in self.spools.items()}
        self.progress_at = {s: time.monotonic() for s in self.spools}
        self.recent: dict[int, list] = {}  # frames of this session's unacknowledged transitions, to skip disk reads
        self.socket: zmq.Socket | None = None
        self.endpoint: str | None = None
        self.learner: dict = {}  # newest status from the learner
        self.first_status: dict | None = None
        self.weights: tuple[int, bytes, dict] | None = None  # newest weights not yet taken by the actor
        self.policy_version = -1
        self.last_heard = 0.0
        self._next_heartbeat = 0.0

    # ----- connection ---------------------------------------------------------------------
    def connect(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        endpoint = self.fixed_endpoint or read_endpoint(self.run_root)
        while endpoint is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no learner endpoint appeared in {self.run_root / 'endpoints.json'} within "
                                   f"{timeout_s:.0f} s; start the learner, or pass --connect tcp://HOST:PORT")
            time.sleep(0.05)
            endpoint = read_endpoint(self.run_root)
        self._open(endpoint)

    def _open(self, endpoint: str) -> None:
        if self.socket is not None:
            self.socket.close(linger=0)
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.IDENTITY, f"{self.actor_id}:{self.session}".encode())
        socket.setsockopt(zmq.LINGER, 1000)
        socket.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        socket.setsockopt(zmq.SNDHWM, 4 * SEND_WINDOW)
        make_curve_client(socket, keys_dir(self.run_root), self.client)
        socket.connect(endpoint)
        self.socket, self.endpoint = socket, endpoint
        for session, spool in self.spools.items():  # whatever was in flight on the old socket is sent again
            self.cursor[session] = spool.first_seq
        self._next_heartbeat = 0.0

    # ----- producing ----------------------------------------------------------------------
    def submit(self, header: dict, arrays: dict) -> None:
        """Spool one transition (it counts as produced from here on), then send it when the window allows."""
        seq = self.spool.next_seq
        frames = encode("transition", {**header, "actor_id": self.actor_id, "actor_session": self.session, "seq": seq},
                        arrays)
        self.spool.append(seq, frames)
        self.recent[seq] = frames
        self._send_pending()

    def control(self, kind: str, header: dict) -> None:
        """Best-effort messages (episode summaries, evaluations, done)."""
        try:
            self.socket.send_multipart(encode(kind, {**header, "actor_id": self.actor_id}), flags=zmq.NOBLOCK)
        except zmq.Again:
            pass

    @property
    def backlog(self) -> int:
        return sum(spool.backlog for spool in self.spools.values())

    def all_acked(self) -> bool:
        return self.backlog == 0

    # ----- the pump -----------------------------------------------------------------------
    def pump(self, timeout_ms: int = 0) -> None:
        """Read what the learner sent, resend and send what is due, heartbeat."""
        while self.socket.poll(timeout_ms):
            timeout_ms = 0
            try:
                kind, header, _, blobs = decode(self.socket.recv_multipart())
            except WireError:
                continue
            self._handle(kind, header, blobs)
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._heartbeat(now)
        self._send_pending()

    def _handle(self, kind: str, header: dict, blobs: dict) -> None:
        self.last_heard = time.monotonic()
        if kind in ("ack", "status"):
            for session, next_needed in header.get("next_seq", {}).items():
                self._acknowledged(session, int(next_needed))
        if kind == "status":
            self.learner = header
            if self.first_status is None:
                self.first_status = header
        elif kind in ("ack", "progress"):
            self.learner = {**self.learner, **{k: v for k, v in header.items() if k != "next_seq"}}
        elif kind == "nack":
            session = header.get("session")
            if session in self.spools:
                self.cursor[session] = max(int(header["next_seq"]), self.spools[session].first_seq)
        elif kind == "weights" and "weights" in blobs:
            version = int(header["version"])
            if version > self.policy_version and (self.weights is None or version > self.weights[0]):
                self.weights = (version, blobs["weights"], header)

    def _acknowledged(self, session: str, next_needed: int) -> None:
        spool = self.spools.get(session)
        if spool is None:
            return
        if next_needed > spool.first_seq:
            self.progress_at[session] = time.monotonic()
        spool.acknowledge(next_needed)
        self.cursor[session] = max(self.cursor[session], spool.first_seq)
        if session == self.session:
            for seq in [s for s in self.recent if s < spool.first_seq]:
                del self.recent[seq]
        elif spool.backlog == 0:  # an earlier process's session, now wholly with the learner
            spool.remove_if_empty()
            del self.spools[session], self.cursor[session], self.progress_at[session]

    def _heartbeat(self, now: float) -> None:
        self._next_heartbeat = now + HEARTBEAT_S
        if not self.fixed_endpoint:
            endpoint = read_endpoint(self.run_root)
            if endpoint and endpoint != self.endpoint:  # the learner restarted on another port
                self._open(endpoint)
        for session, spool in self.spools.items():
            if spool.backlog and now - self.progress_at[session] > RESEND_AFTER_S:
                self.cursor[session] = spool.first_seq
                self.progress_at[session] = now
        sessions = {s: [sp.first_seq, sp.next_seq] for s, sp in self.spools.items()}
        self.control("hello", {"actor_session": self.session, "sessions": sessions, "policy_version": self.policy_version,
                               "spooled": self.backlog})

    def _send_pending(self) -> None:
        for session, spool in self.spools.items():
            while self.cursor[session] < spool.next_seq and self.cursor[session] - spool.first_seq < SEND_WINDOW:
                seq = self.cursor[session]
                frames = self.recent.get(seq) if session == self.session else None
                try:
                    self.socket.send_multipart(frames or spool.read(seq), flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:  # no learner connected: keep it spooled, ZeroMQ is reconnecting
                    return
                self.cursor[session] = seq + 1

    def close(self) -> None:
        if self.spool.backlog == 0:
            self.spool.acknowledge(self.spool.next_seq, final=True)
            self.spool.remove_if_empty()
        self.spool.close()
        if self.socket is not None:
            self.socket.close()
