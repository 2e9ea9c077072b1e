"""ZeroMQ CURVE keys in the run directory, and a ZAP handler that counts refused peers.

``RUN/keys/server.key(_secret)`` is the learner's pair, ``RUN/keys/actor.key(_secret)`` the actors'
pair; ``RUN/keys/authorized/*.key`` are the public keys the learner accepts. Secret files are
readable by their owner only (0600).
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from pathlib import Path

import zmq
import zmq.auth
import zmq.utils.z85

ZAP_ENDPOINT = "inproc://zeromq.zap.01"


def keys_dir(run_root: Path) -> Path:
    return Path(run_root) / "keys"


def ensure_keys(run_root: Path, client: str = "actor") -> Path:
    """Create the server pair and a client pair named ``client`` if missing; returns the keys folder."""
    folder = keys_dir(run_root)
    authorized = folder / "authorized"
    authorized.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    for name in ("server", client):
        if not (folder / f"{name}.key_secret").exists():
            public, secret = zmq.auth.create_certificates(folder, name)
            os.chmod(secret, 0o600)
            os.chmod(public, 0o644)
    for name in (client,):
        target = authorized / f"{name}.key"
        if not target.exists():
            target.write_bytes((folder / f"{name}.key").read_bytes())
    return folder


def _load(path: Path) -> tuple[bytes, bytes | None]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run `robot-rl keys RUN_DIR` on the learner machine and copy the "
                                f"keys folder to this one")
    return zmq.auth.load_certificate(path)


def server_keys(folder: Path) -> tuple[bytes, bytes]:
    return _load(Path(folder) / "server.key_secret")


def client_keys(folder: Path, client: str = "actor") -> tuple[bytes, bytes, bytes]:
    """(client public, client secret, server public)."""
    public, secret = _load(Path(folder) / f"{client}.key_secret")
    server_public, _ = _load(Path(folder) / "server.key")
    return public, secret, server_public


def authorized_keys(folder: Path) -> set[bytes]:
    keys = set()
    for path in sorted((Path(folder) / "authorized").glob("*.key")):
        public, _ = zmq.auth.load_certificate(path)
        keys.add(public)
    return keys


def make_curve_server(socket: zmq.Socket, folder: Path) -> None:
    public, secret = server_keys(folder)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    socket.zap_domain = b"robot_rl"


def make_curve_client(socket: zmq.Socket, folder: Path, client: str = "actor") -> None:
    public, secret, server_public = client_keys(folder, client)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server_public


class ZapAuthenticator:
    """Answers ZAP requests on its own thread: CURVE peers with an authorized key pass, others are counted."""

    def __init__(self, context: zmq.Context, folder: Path):
        self.folder = Path(folder)
        self.allowed = authorized_keys(folder)
        self.refused: dict[str, int] = defaultdict(int)
        self.accepted = 0
        self.socket = context.socket(zmq.REP)
        self.socket.linger = 0
        self.socket.bind(ZAP_ENDPOINT)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="zap", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.socket.poll(100):
                continue
            msg = self.socket.recv_multipart()
            version, request_id, _domain, _address, _identity, mechanism = msg[:6]
            credentials = msg[6:]
            key = zmq.utils.z85.encode(credentials[0]) if mechanism == b"CURVE" and credentials else None
            if key is not None and key not in self.allowed:
                self.allowed = authorized_keys(self.folder)  # a key authorized since start (`robot-rl keys --client`)
            if key is not None and key in self.allowed:
                status, text = b"200", b"OK"
                self.accepted += 1
            else:
                status, text = b"400", b"not an authorized key"
                self.refused["unauthorized_key" if mechanism == b"CURVE" else "unauthenticated"] += 1
            self.socket.send_multipart([version, request_id, status, text, b"", b""])

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=1.0)
        self.socket.close()
