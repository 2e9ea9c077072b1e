"""Actor -> learner transport: transitions/s over loopback (two 128x128x3 images + state per transition,
spooled, CURVE-encrypted, stored and fsynced before the ack), weight-publish latency for the default
networks, fsync cost, and replay load time per 100k transitions. Prints one JSON line."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from robot_rl.acting import ActingPolicy, weights_from_bytes  # noqa: E402
from robot_rl.config import SessionConfig, dump_session  # noqa: E402
from robot_rl.replay import ReplayBuffer, ReplayStore  # noqa: E402
from robot_rl.rundir import RunDir, write_json_atomic  # noqa: E402
from robot_rl.spaces import ObsSpec  # noqa: E402
from robot_rl.transport.keys import ensure_keys  # noqa: E402
from robot_rl.transport.link import ActorLink  # noqa: E402

STATE_DIM, ACTION_DIM, IMAGE = 18, 4, (128, 128, 3)
PIXEL_SPEC = ObsSpec(STATE_DIM, {"front": IMAGE, "wrist": IMAGE})
TRANSITIONS = int(os.environ.get("BENCH_TRANSITIONS", 3000))


def fsync_cost_ms(folder: Path, record_bytes: int, repeats: int = 50) -> dict:
    """One append of ``record_bytes`` + fsync, as the learner's group commit does."""
    path, data, times = folder / "fsync_probe", os.urandom(record_bytes), []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for _ in range(repeats):
        os.write(fd, data)
        t0 = time.perf_counter()
        os.fsync(fd)
        times.append(1000 * (time.perf_counter() - t0))
    os.close(fd)
    path.unlink()
    return {"p50": round(statistics.median(times), 3), "max": round(max(times), 3)}


def start_learner(root: Path) -> tuple[RunDir, subprocess.Popen]:
    run = RunDir(root).make()
    config = SessionConfig(name="bench", env="robot_rl/PickCubePixels-v0",
                           learner={"warmup_steps": 10**9, "replay_capacity": TRANSITIONS},
                           train={"max_minutes": 30})
    dump_session(config, run.config)
    write_json_atomic(run.spec, {"obs_spec": PIXEL_SPEC.to_dict(), "action_low": [-1.0] * ACTION_DIM,
                                 "action_high": [1.0] * ACTION_DIM, "env": config.env})
    ensure_keys(run.root)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.learner", str(run.root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return run, proc


def weight_latency_ms(link: ActorLink, config: SessionConfig, repeats: int = 10) -> float:
    """From the learner serializing the default networks (its own measurement) to the actor having them loaded."""
    policy = ActingPolicy(PIXEL_SPEC, ACTION_DIM, config.learner, -np.ones(ACTION_DIM), np.ones(ACTION_DIM))
    latencies = []
    for _ in range(repeats):
        link.weights, link.policy_version = None, -1
        link.control("hello", {"actor_session": link.session, "sessions": {}, "policy_version": -1, "spooled": 0})
        deadline = time.monotonic() + 60
        while link.weights is None:
            link.pump(100)
            if time.monotonic() > deadline:
                raise TimeoutError("no weights from the learner")
        version, blob, header = link.weights
        policy.load(weights_from_bytes(blob), version)
        link.policy_version = version
        latencies.append(header["serialize_ms"] + 1000 * (time.time() - header["published_at"]))
    return round(statistics.median(latencies), 2)


def throughput(link: ActorLink) -> float:
    rng = np.random.default_rng(0)
    frames = [{"front": rng.integers(0, 255, IMAGE, np.uint8), "wrist": rng.integers(0, 255, IMAGE, np.uint8),
               "state": rng.standard_normal(STATE_DIM).astype(np.float32)} for _ in range(8)]
    t0 = time.perf_counter()
    for i in range(TRANSITIONS):
        obs, nxt = frames[i % 8], frames[(i + 1) % 8]
        arrays = {"action": np.zeros(ACTION_DIM, np.float32), **{f"next_obs/{k}": v for k, v in nxt.items()}}
        if i % 100 == 0:  # as the actor does: the observation travels only at an episode start
            arrays.update({f"obs/{k}": v for k, v in obs.items()})
        link.submit({"policy_version": 0, "reward": 0.0, "terminated": False, "truncated": (i + 1) % 100 == 0,
                     "episode_start": i % 100 == 0}, arrays)
        link.pump(0)
    deadline = time.monotonic() + 600
    while not link.all_acked():
        link.pump(10)
        if time.monotonic() > deadline:
            raise TimeoutError("the learner stopped acknowledging")
    return TRANSITIONS / (time.perf_counter() - t0)


def replay_scaling(folder: Path, sizes=(25_000, 50_000, 100_000)) -> dict:
    """State-only store (the pick-cube state task): bytes and load time at growing sizes."""
    spec, out = ObsSpec(STATE_DIM), {}
    store = ReplayStore(folder / "state", spec, ACTION_DIM)
    rng = np.random.default_rng(1)
    states = rng.standard_normal((1001, STATE_DIM)).astype(np.float32)
    for size in sizes:
        while store.count < size:
            i = store.count
            header = {"actor_id": "a", "actor_session": "s", "seq": i, "policy_version": 0, "reward": 0.0,
                      "terminated": False, "truncated": (i + 1) % 100 == 0, "episode_start": i % 100 == 0}
            store.append(header, {"state": states[i % 1000]}, np.zeros(ACTION_DIM, np.float32),
                         {"state": states[(i + 1) % 1000]})
        store.commit()
        reopened = ReplayStore(folder / "state", spec, ACTION_DIM)
        t0 = time.perf_counter()
        buffer = ReplayBuffer(spec, ACTION_DIM, size)
        reopened.load_into(buffer)
        loaded = len(buffer)
        out[size] = {"load_s": round(time.perf_counter() - t0, 3), "bytes": reopened.disk_bytes(), "loaded": loaded}
    return out


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fsync_ms = fsync_cost_ms(tmp, 64 * 2 * 98_400)  # one group commit of 64 pixel transitions
        fsync_small_ms = fsync_cost_ms(tmp, 300)  # one state-only transition
        run, learner = start_learner(tmp / "run")
        context = zmq.Context()
        link = ActorLink(run.root, "bench", context)
        try:
            link.connect()
            while link.first_status is None or link.weights is None:
                link.pump(100)
            link.policy_version = link.weights[0]
            config = SessionConfig(name="bench", env="robot_rl/PickCubePixels-v0")
            publish_ms = weight_latency_ms(link, config)
            per_s = throughput(link)
        finally:
            link.close()
            context.term()
            learner.terminate()
            learner.wait()
        pixel_store = ReplayStore(run.replay / "online", PIXEL_SPEC, ACTION_DIM)
        t0 = time.perf_counter()
        pixel_buffer = ReplayBuffer(PIXEL_SPEC, ACTION_DIM, TRANSITIONS)
        pixel_store.load_into(pixel_buffer)
        pixel_loaded = len(pixel_buffer)
        pixel_load_s = time.perf_counter() - t0
        pixel_bytes = pixel_store.disk_bytes() / max(pixel_store.count, 1)
        scaling = replay_scaling(tmp)
    big = scaling[100_000]
    print(json.dumps({
        "transitions_per_s": round(per_s, 1),
        "weight_publish_ms": publish_ms,
        "replay_load_s_per_100k": big["load_s"],
        "replay_load_s_per_100k_pixels": round(pixel_load_s / max(pixel_loaded, 1) * 100_000, 1),
        "replay_bytes_per_transition_pixels": round(pixel_bytes),
        "replay_scaling_state": {str(k): v for k, v in scaling.items()},
        "fsync_ms_group_commit_64_pixel": fsync_ms, "fsync_ms_small_record": fsync_small_ms,
        "transitions": TRANSITIONS, "images": "2x128x128x3 uint8", "state_dim": STATE_DIM,
        "link": "CURVE, spool before send, ack after fsync",
    }))


if __name__ == "__main__":
    main()
