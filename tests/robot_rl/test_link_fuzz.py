"""Fuzzing the learner's socket: garbage, truncated and oversized messages, wrong schema versions and
unauthenticated peers are each refused with a counted reason; the learner stays up and only the one
valid transition reaches the replay store."""

import json
import random
import socket
import subprocess
import sys
import time

import msgpack
import numpy as np
import pytest
import yaml
import zmq
import zmq.auth

from robot_rl.replay import ReplayStore
from robot_rl.session import child_env, prepare_run
from robot_rl.spaces import ObsSpec
from robot_rl.transport.keys import make_curve_client
from robot_rl.transport.wire import SCHEMA_VERSION, encode


def _transition(seq=0, **overrides):
    header = {"actor_id": "fuzzer", "actor_session": "fuzz0001", "seq": seq, "policy_version": 0, "reward": 0.5,
              "terminated": False, "truncated": False, "episode_start": True, **overrides.pop("header", {})}
    arrays = {"action": np.zeros(1, np.float32), "obs/state": np.ones(3, np.float32),
              "next_obs/state": np.full(3, 2.0, np.float32), **overrides}
    return encode("transition", header, arrays)


def _wait_status(run, predicate, timeout_s=15.0):
    deadline = time.monotonic() + timeout_s
    status = {}
    while time.monotonic() < deadline:
        try:
            status = json.loads(run.status.read_text())
            if predicate(status):
                return status
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"learner status never satisfied the check; last: {status}")


@pytest.fixture
def learner(tmp_path):
    config = tmp_path / "session.yaml"
    config.write_text(yaml.safe_dump({
        "name": "fuzz", "env": "Pendulum-v1", "learner": {"hidden_dims": [16], "num_critics": 2, "warmup_steps": 10_000},
        "train": {"max_minutes": 2},
    }))
    run, _ = prepare_run(config, tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.learner", str(run.root)], env=child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not run.status.exists():
        assert proc.poll() is None
        time.sleep(0.05)
    yield run, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _dealer(context, run, endpoint, keys="actor"):
    dealer = context.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.reconnect_ivl = -1  # one handshake per peer, so refusals can be counted exactly
    if keys == "actor":
        make_curve_client(dealer, run.keys)
    elif keys == "stranger":
        public, secret = zmq.curve_keypair()
        dealer.curve_publickey, dealer.curve_secretkey = public, secret
        dealer.curve_serverkey = zmq.auth.load_certificate(run.keys / "server.key")[0]
    dealer.connect(endpoint)
    return dealer


def test_learner_refuses_bad_input_and_stays_up(learner):
    run, proc = learner
    endpoint = json.loads(run.endpoints.read_text())["transitions"]
    context = zmq.Context()
    rng = random.Random(7)
    good = _dealer(context, run, endpoint)
    garbage = 0
    for _ in range(40):  # random bytes: 1-4 frames
        good.send_multipart([rng.randbytes(rng.randint(0, 300)) for _ in range(rng.randint(1, 4))])
        garbage += 1
    good.send_multipart(_transition()[:-1])  # truncated multipart
    head = msgpack.unpackb(_transition()[0])
    good.send_multipart([msgpack.packb({**head, "v": SCHEMA_VERSION + 1}), *_transition()[1:]])  # wrong schema
    good.send_multipart([msgpack.packb({**head, "arrays": [{"name": "action", "dtype": "float32", "shape": [2**20, 2**20]}]}),
                         b"\x00" * 4])  # huge declared size
    good.send_multipart(_transition(**{"obs/state": np.ones(7, np.float32)}))  # wrong shape
    good.send_multipart(_transition(header={"reward": float("nan")}))  # non-finite
    good.send_multipart(_transition(header={"actor_id": None}))  # anonymous
    good.send_multipart(_transition(header={"seq": -3}))  # impossible id
    good.send_multipart(_transition(0))  # the one valid transition
    assert good.poll(10_000), "no ack for the valid transition"

    strangers = [_dealer(context, run, endpoint, keys) for keys in ("stranger", "none")]
    for dealer in strangers:
        try:
            dealer.send_multipart(_transition(1), flags=zmq.NOBLOCK)
        except zmq.Again:  # no handshake, no queue: the refusal itself is what counts
            pass
    host, port = endpoint.rsplit("/", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw:  # not even ZMTP: dropped, must not hurt
        raw.sendall(bytes(rng.randrange(256) for _ in range(512)))
        time.sleep(0.3)

    def settled(status):
        r = status["rejected"]
        handshakes = sum(v for k, v in r.items() if k.startswith("handshake_failed"))
        return (r.get("zap_unauthorized_key") == 1 and handshakes >= 2
                and sum(r.get(k, 0) for k in ("bad_header", "frame_count", "size_mismatch", "empty")) >= garbage)

    status = _wait_status(run, settled)
    rejected = status["rejected"]
    assert proc.poll() is None  # still up
    assert rejected["bad_version"] == 1 and rejected["too_large"] == 1
    assert rejected["bad_transition"] == 2 and rejected["non_finite"] == 1 and rejected["no_actor_id"] == 1
    assert rejected["frame_count"] >= 1
    # the peer without CURVE and the one with an unknown key each fail the handshake (libzmq names the reason)
    assert sum(v for k, v in rejected.items() if k.startswith("handshake_failed")) >= 2, rejected
    assert status["env_steps"] == 1 and status["actors"]["fuzzer"]["received"] == 1
    for dealer in [good, *strangers]:
        dealer.close()
    context.term()
    proc.terminate()
    assert proc.wait(timeout=30) == 0

    store = ReplayStore(run.replay / "online", ObsSpec(3), 1)
    ((header, obs, action, next_obs),) = list(store.iter_transitions())  # nothing else reached the store
    assert header["seq"] == 0 and header["reward"] == 0.5
    np.testing.assert_array_equal(obs["state"], np.ones(3)) and np.testing.assert_array_equal(next_obs["state"], 2.0)
