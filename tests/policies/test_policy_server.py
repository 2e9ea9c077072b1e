"""The policy server over real ZeroMQ on loopback with CURVE, serving real exported ONNX and SAC policies.

Checks answers against direct onnxruntime/torch inference (request/reply and streaming), batching of
four concurrent clients, hot-swap version and shape checks, refusal of an unauthorized key, and
that malformed requests get error replies while the server keeps serving.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zmq
import zmq.auth

from policies.export.onnx_export import export_onnx, make_session
from policies.server import (CallablePolicy, OnnxServedPolicy, PolicyClient, PolicyServer, PolicyServerError,
                             PolicyTimeout, SacServedPolicy, ServedPolicy)
from robot_rl.acting import ActingPolicy, weights_to_bytes
from robot_rl.config import LearnerConfig
from robot_rl.spaces import ObsSpec
from robot_rl.transport.keys import ensure_keys, make_curve_client
from robot_rl.transport.wire import SCHEMA_VERSION, decode, encode

torch.set_num_threads(1)
SPEC = ObsSpec(state_dim=12)
ACTION_DIM = 4
LOW, HIGH = np.array([-0.5, -0.5, -0.5, -1.0], np.float32), np.array([0.5, 0.5, 0.5, 1.0], np.float32)
EXACT = 1e-6  # same onnxruntime graph on the same inputs; only the float32 un-normalization differs


def acting_policy(seed: int, hidden=(32, 32)) -> ActingPolicy:
    torch.manual_seed(seed)
    return ActingPolicy(SPEC, ACTION_DIM, LearnerConfig(hidden_dims=list(hidden)), LOW, HIGH)


def export(policy: ActingPolicy, path: Path) -> Path:
    spec = {"obs_spec": SPEC.to_dict(), "action_dim": ACTION_DIM, "action_low": LOW.tolist(),
            "action_high": HIGH.tolist(), "policy_version": 0}
    export_onnx(policy.deploy, spec, path, {"state": observations(16, seed=99)})
    return path


def observations(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, SPEC.state_dim)).astype(np.float32)


def direct(path: Path, states: np.ndarray) -> np.ndarray:
    """Direct onnxruntime inference, normalized to [-1, 1] with the export's bounds."""
    actions = make_session(path).run(["action"], {"state": states})[0]
    return (actions - (HIGH + LOW) / 2) / ((HIGH - LOW) / 2)


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    return {"a": export(acting_policy(0), root / "a.onnx"), "b": export(acting_policy(1), root / "b.onnx"),
            "wide": export(acting_policy(2, hidden=(48, 32)), root / "wide.onnx")}


@pytest.fixture()
def keys(tmp_path):
    return ensure_keys(tmp_path / "run")


@pytest.fixture()
def serving(exports, keys):
    servers = []

    def start(policy=None, **kwargs) -> PolicyServer:
        server = PolicyServer(policy or OnnxServedPolicy(exports["a"]), keys, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_request_reply_and_streaming_agree_with_onnxruntime(serving, exports, keys):
    server = serving()
    states = observations(40, seed=1)
    expected = direct(exports["a"], states)
    with PolicyClient(server.endpoint, keys) as client:
        info = client.info()
        assert info["obs_spec"] == SPEC.to_dict() and info["action_dim"] == ACTION_DIM and info["version"] == 0
        for state, want in zip(states[:10], expected[:10]):
            action, version = client.act({"state": state})
            assert action.shape == (ACTION_DIM,) and version == 0
            assert np.max(np.abs(action - want)) <= EXACT
        actions, _ = client.act({"state": states[:8]})  # a batch in one request
        assert np.max(np.abs(actions - expected[:8])) <= EXACT

        ids = [client.submit({"state": state}) for state in states[10:]]  # streaming: no waiting between sends
        action, _ = client.act({"state": states[0]})  # a request/reply in between: the streamed replies wait for receive
        assert np.max(np.abs(action - expected[0])) <= EXACT
        got = {}
        for _ in ids:
            request_id, action, header = client.receive()
            got[request_id] = action[0]
            assert header["version"] == 0 and header["inference_us"] > 0 and header["queue_us"] >= 0
        assert sorted(got) == ids
        assert max(np.max(np.abs(got[i] - want)) for i, want in zip(ids, expected[10:])) <= EXACT
        stats = client.stats()
    assert stats["requests"] == 10 + 1 + 30 + 1 and stats["samples"] == 10 + 8 + 30 + 1
    assert 0 < stats["latency_us"]["p50"] <= stats["latency_us"]["p99"]
    assert stats["errors"] == {} and sum(int(k) * v for k, v in stats["batch_requests"].items()) == 42


def test_four_concurrent_actors_are_batched_and_each_gets_its_own_answer(serving, exports, keys):
    # the actors send in lock step (a barrier per round) and the server waits up to 20 ms for more requests,
    # so a round is one batch unless a thread is descheduled for 20 ms (it happens on the loaded 2-core machine)
    server = serving(batch_window_us=20_000.0)
    failures, per_client, actors = [], 40, 4
    barrier = threading.Barrier(actors)

    def actor(index: int) -> None:
        states = observations(per_client, seed=10 + index)
        expected = direct(exports["a"], states)
        try:
            with PolicyClient(server.endpoint, keys, timeout_ms=10_000) as client:
                for state, want in zip(states, expected):
                    barrier.wait(timeout=30)
                    action, _ = client.act({"state": state})
                    if np.max(np.abs(action - want)) > EXACT:
                        failures.append((index, action, want))
        except Exception as err:  # reported below: a thread's exception does not fail the test by itself
            failures.append((index, repr(err)))
            barrier.abort()

    threads = [threading.Thread(target=actor, args=(i,)) for i in range(actors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures[:3]
    stats = server.stats()
    assert stats["requests"] == actors * per_client
    batched = {int(k): v for k, v in stats["batch_requests"].items()}
    assert max(batched) <= actors
    shared = sum(size * count for size, count in batched.items() if size > 1)
    assert shared >= stats["requests"] // 2, batched  # most requests shared an inference call with another actor's


def test_onnx_hot_swap_checks_versions_and_shapes_and_keeps_serving(serving, exports, keys):
    server = serving()
    states = observations(8, seed=3)
    with PolicyClient(server.endpoint, keys) as client:
        assert client.push_weights(exports["b"].read_bytes(), version=3) == 3
        actions, version = client.act({"state": states})
        assert version == 3 and np.max(np.abs(actions - direct(exports["b"], states))) <= EXACT

        for stale in (3, 2):  # equal and older versions are refused
            with pytest.raises(PolicyServerError, match="stale_version.*not newer than the served version 3"):
                client.push_weights(exports["a"].read_bytes(), version=stale)
        with pytest.raises(PolicyServerError, match="weights_mismatch.*instead of"):
            client.push_weights(exports["wide"].read_bytes(), version=4)  # another hidden width
        with pytest.raises(PolicyServerError, match="not_onnx"):
            client.push_weights(b"not a model", version=5)

        actions, version = client.act({"state": states})  # still the version-3 weights
        assert version == 3 and np.max(np.abs(actions - direct(exports["b"], states))) <= EXACT
        stats = client.stats()
    assert stats["weights_swaps"] == 1
    assert stats["weights_rejected"] == {"stale_version": 2, "weights_mismatch": 1, "not_onnx": 1}
    assert stats["errors"] == {}


def test_sac_hot_swap_takes_learner_weights_and_refuses_other_shapes(serving, keys):
    served = SacServedPolicy(acting_policy(0), ACTION_DIM)
    assert isinstance(served, ServedPolicy)
    server = serving(served)
    newer, wide = acting_policy(5), acting_policy(6, hidden=(48, 32))
    states = observations(6, seed=4)

    def deterministic(policy: ActingPolicy) -> np.ndarray:
        with torch.no_grad():
            return policy.actor.deterministic(policy.encoder({"state": torch.from_numpy(states)})).numpy()

    with PolicyClient(server.endpoint, keys) as client:
        state = {f"encoder.{k}": v for k, v in newer.encoder.state_dict().items()}
        state.update({f"actor.{k}": v for k, v in newer.actor.state_dict().items()})
        assert client.push_weights(weights_to_bytes(state), version=1) == 1
        actions, version = client.act({"state": states})
        assert version == 1 and np.max(np.abs(actions - deterministic(newer))) <= 1e-6  # same torch ops, same inputs

        wide_state = {f"actor.{k}": v for k, v in wide.actor.state_dict().items()}
        wide_state.update({f"encoder.{k}": v for k, v in wide.encoder.state_dict().items()})
        with pytest.raises(PolicyServerError, match="weights_mismatch.*actor.trunk.0.weight is .48, 12. instead of .32, 12."):
            client.push_weights(weights_to_bytes(wide_state), version=2)
        with pytest.raises(PolicyServerError, match="not_safetensors"):
            client.push_weights(b"\x00" * 64, version=2)
        actions, version = client.act({"state": states})
        assert version == 1 and np.max(np.abs(actions - deterministic(newer))) <= 1e-6


def test_a_client_without_an_authorized_key_is_refused(serving, keys):
    server = serving()
    zmq.auth.create_certificates(keys, "intruder")  # a key pair that was never put in keys/authorized
    with PolicyClient(server.endpoint, keys, client="intruder", timeout_ms=500) as client:
        with pytest.raises(PolicyTimeout, match="refused key looks like silence"):
            client.act({"state": observations(1, seed=0)[0]})
    assert server.stats()["refused_peers"].get("unauthorized_key", 0) >= 1
    assert server.stats()["requests"] == 0


def test_malformed_requests_get_errors_and_the_server_keeps_serving(serving, exports, keys):
    def load_carelessly(blob: bytes, version: int) -> None:
        raise KeyError("a policy whose loader does not raise WeightsRejected")

    failing = CallablePolicy(lambda obs: np.full((len(obs["state"]), 3), np.nan) if obs["state"][0, 0] > 100
                             else np.zeros((len(obs["state"]), ACTION_DIM)), SPEC, ACTION_DIM, load_fn=load_carelessly)
    server = serving(failing)
    context = zmq.Context()
    raw = context.socket(zmq.DEALER)
    raw.linger = 0
    make_curve_client(raw, keys)
    raw.connect(server.endpoint)
    good = observations(1, seed=0)

    def ask(frames) -> tuple[str, dict]:
        raw.send_multipart(frames)
        assert raw.poll(5000), "the server did not answer"
        kind, header, _, _ = decode(raw.recv_multipart())
        return kind, header

    cases = [
        ([b"\xc1garbage"], "bad_header"),
        (encode("act", {"id": 1}, {"state": good})[:1], "frame_count"),
        ([json.dumps({"v": SCHEMA_VERSION}).encode()], "bad_header"),
        (encode("act", {}, {"state": good}), "no_id"),
        (encode("act", {"id": 2}, {"state": good[:, :5]}), "bad_obs"),
        (encode("act", {"id": 3}, {"state": good.astype(np.float64)}), "bad_obs"),
        (encode("act", {"id": 4}, {"state": good, "front": np.zeros((1, 8, 8, 3), np.uint8)}), "bad_obs"),
        (encode("act", {"id": 5}, {"state": np.full_like(good, np.nan)}), "bad_obs"),
        (encode("act", {"id": 6}, {"state": np.zeros((0, SPEC.state_dim), np.float32)}), "bad_obs"),
        (encode("act", {"id": 7}, {"state": good + 1000}), "policy_failed"),  # the policy returns the wrong shape
        (encode("launch_missiles", {"id": 8}), "unknown_kind"),
        (encode("weights", {"id": 9, "version": "new"}, blobs={"weights": b""}), "bad_weights_message"),
        (encode("weights", {"id": 10, "version": 1}, blobs={"weights": b"x"}), "load_failed"),
    ]
    try:
        for frames, reason in cases:
            kind, header = ask(frames)
            assert (kind, header["reason"]) == ("error", reason), (reason, header)
            assert header["detail"]
        kind, header = ask(encode("act", {"id": 11}, {"state": good}))  # and a good request is still answered
        assert kind == "action" and header["id"] == 11
    finally:
        raw.close()
        context.term()
    stats = server.stats()
    assert stats["requests"] == 1 and sum(stats["errors"].values()) == len(cases) - 2
    assert stats["weights_rejected"] == {"bad_weights_message": 1, "load_failed": 1} and stats["version"] == 0


def test_serving_a_run_with_the_sac_actor_matches_its_torch_policy(tmp_path):
    from export_runs import STATE_SESSION, make_run, torch_policy

    from robot_rl.commands.serve import make_server

    run = make_run(tmp_path / "run", STATE_SESSION, demos=0)
    server = make_server(run.root, "sac", "tcp://127.0.0.1:*").start()
    try:
        assert server.keys == run.keys and (run.keys / "server.key_secret").exists()  # created on first serve
        states = np.random.default_rng(5).normal(size=(6, 13)).astype(np.float32)
        with PolicyClient(server.endpoint, run.keys) as client:
            info = client.info()
            actions, version = client.act({"state": states})
    finally:
        server.close()
    low, high = np.asarray(info["action_low"], np.float32), np.asarray(info["action_high"], np.float32)
    with torch.no_grad():
        expected = torch_policy(run)({"state": torch.from_numpy(states)}).numpy()  # env units
    assert version == 0 and info["kind"] == "sac"
    assert np.max(np.abs(actions * (high - low) / 2 + (high + low) / 2 - expected)) <= 1e-5  # float32 rescaling


@pytest.mark.slow  # a learner process starts and stops: ~13 s on the shared 2-core machine
def test_server_following_a_learner_swaps_in_the_weights_it_publishes(tmp_path):
    """A real learner process (no training: warmup never ends) sends its version-0 actor to the server."""
    from robot_rl.acting import weights_from_bytes
    from robot_rl.config import SessionConfig, dump_session
    from robot_rl.rundir import RunDir, write_json_atomic

    run = RunDir(tmp_path / "run").make()
    config = SessionConfig(name="follow", env="robot_rl/PickCube-v0", seed=3,
                           learner={"hidden_dims": [32, 32], "num_critics": 2, "warmup_steps": 10**9})
    dump_session(config, run.config)
    write_json_atomic(run.spec, {"obs_spec": SPEC.to_dict(), "action_low": LOW.tolist(), "action_high": HIGH.tolist(),
                                 "env": config.env})
    keys = ensure_keys(run.root)
    learner = subprocess.Popen([sys.executable, "-m", "robot_rl.learner", str(run.root)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    server = None
    try:
        # version -1: a server that has no learner weights yet, so the learner sends its current ones
        server = PolicyServer(SacServedPolicy(acting_policy(0), ACTION_DIM, version=-1), keys, follow_run=run.root).start()
        deadline = time.monotonic() + 60.0
        while server.stats()["version"] < 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.stats()["version"] == 0, server.stats()
        states = observations(5, seed=8)
        with PolicyClient(server.endpoint, keys) as client:
            served, version = client.act({"state": states})
        assert version == 0
    finally:
        if server is not None:
            server.close()
        learner.terminate()
        _, err = learner.communicate(timeout=30)
    assert learner.returncode == 0, err[-2000:]
    reference = acting_policy(1)  # the learner's final actor, which never trained: the weights it sent
    reference.load(weights_from_bytes(run.final_policy.read_bytes()), version=0)
    with torch.no_grad():
        expected = reference.actor.deterministic(reference.encoder({"state": torch.from_numpy(states)})).numpy()
    assert np.max(np.abs(served - expected)) <= 1e-6
    assert np.max(np.abs(served - SacServedPolicy(acting_policy(0), ACTION_DIM).act_batch({"state": states}))) > 1e-3


def test_serve_command_serves_an_export_until_stopped(exports, tmp_path):
    """`robot-rl serve policy.onnx` in its own process: prints the endpoint, answers, prints stats on SIGINT."""
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    (export_dir / "policy.onnx").write_bytes(exports["a"].read_bytes())
    script = ("import argparse, sys; from robot_rl.commands import serve; parser = argparse.ArgumentParser(); "
              "serve.register(parser.add_subparsers()); args = parser.parse_args(sys.argv[1:]); sys.exit(args.func(args))")
    proc = subprocess.Popen([sys.executable, "-c", script, "serve", str(export_dir), "--bind", "tcp://127.0.0.1:*"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        started = json.loads(proc.stdout.readline())
        keys = Path(started["keys"])
        assert keys == export_dir / "keys"  # the export travelled without its run: keys next to it
        with PolicyClient(started["endpoint"], keys, timeout_ms=10_000) as client:
            action, version = client.act({"state": observations(1, seed=7)[0]})
        assert np.max(np.abs(action - direct(exports["a"], observations(1, seed=7))[0])) <= EXACT
    finally:
        proc.send_signal(2)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["requests"] == 1


def test_serve_command_explains_a_wrong_target(tmp_path, capsys):
    from robot_rl.commands import serve

    class Args:
        target, policy, bind, keys, batch_window_us, max_batch, follow, threads, seconds = (
            str(tmp_path), "onnx", "tcp://127.0.0.1:*", None, 0.0, 64, False, 1, 0.1)

    assert serve.run(Args()) == 2
    assert "no exported policy at" in capsys.readouterr().err
