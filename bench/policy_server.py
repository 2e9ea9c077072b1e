"""Policy server over loopback: request/reply latency for a state policy, and throughput with 4 concurrent actors.

The pick-cube actor (13 -> 256 -> 256 -> 4, LayerNorm, as in launch/sim_pick_cube.yaml) goes through
``export_onnx`` and is served by ``robot-rl serve`` in its own process (CURVE, 1 inference thread).
Single client: closed-loop ``PolicyClient.act`` round trips (client clock, encode + CURVE + inference +
decode). Four actors: four client processes in closed loop for ``--seconds``; throughput is answered
requests per second, and the server's own stats give its batch-size histogram and queue+inference
percentiles. ``direct_p50_us`` is the same export called in-process (``OnnxServedPolicy.act_batch``,
batch 1) for comparison. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from policies.server import OnnxServedPolicy, PolicyClient  # noqa: E402
from robot_rl.transport.keys import ensure_keys  # noqa: E402

STATE_DIM, HIDDEN, ACTION_DIM = 13, [256, 256], 4
SERVE = ("import argparse, sys; from robot_rl.commands import serve; parser = argparse.ArgumentParser(); "
         "serve.register(parser.add_subparsers()); args = parser.parse_args(sys.argv[1:]); sys.exit(args.func(args))")


def export_policy(folder: Path) -> Path:
    import torch

    from policies.export.onnx_export import export_onnx
    from robot_rl.acting import ActingPolicy
    from robot_rl.config import LearnerConfig
    from robot_rl.spaces import ObsSpec

    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = ObsSpec(STATE_DIM)
    low, high = -np.ones(ACTION_DIM, np.float32), np.ones(ACTION_DIM, np.float32)
    policy = ActingPolicy(spec, ACTION_DIM, LearnerConfig(hidden_dims=HIDDEN), low, high)
    states = np.random.default_rng(0).standard_normal((64, STATE_DIM)).astype(np.float32)
    path = folder / "policy.onnx"
    export_onnx(policy.deploy, {"obs_spec": spec.to_dict(), "action_dim": ACTION_DIM, "action_low": low.tolist(),
                                "action_high": high.tolist()}, path, {"state": states})
    return path


def percentiles_us(samples_ns) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(samples_ns, np.float64), [50, 99]) / 1e3
    return round(float(p50), 1), round(float(p99), 1)


def direct_p50_us(path: Path, calls: int) -> float:
    policy = OnnxServedPolicy(path)
    states = np.random.default_rng(1).standard_normal((64, 1, STATE_DIM)).astype(np.float32)
    samples = []
    for i in range(calls + 500):
        start = time.perf_counter_ns()
        policy.act_batch({"state": states[i % 64]})
        samples.append(time.perf_counter_ns() - start)
    return percentiles_us(samples[500:])[0]


def closed_loop(endpoint: str, keys: str, seconds: float, calls: int, queue=None) -> list[int]:
    """Round trips (ns) of back-to-back requests, for ``calls`` requests or ``seconds``, whichever ends first."""
    states = np.random.default_rng(os.getpid()).standard_normal((64, STATE_DIM)).astype(np.float32)
    samples = []
    with PolicyClient(endpoint, keys, timeout_ms=10_000) as client:
        for i in range(200):  # warm-up: connection, CURVE handshake, caches
            client.act({"state": states[i % 64]})
        end = time.monotonic() + seconds
        while len(samples) < calls and time.monotonic() < end:
            start = time.perf_counter_ns()
            client.act({"state": states[len(samples) % 64]})
            samples.append(time.perf_counter_ns() - start)
    if queue is not None:
        queue.put(len(samples))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="single-client round trips")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the 4-actor run")
    parser.add_argument("--actors", type=int, default=4)
    parser.add_argument("--batch-window-us", type=float, default=0.0)
    args = parser.parse_args()
    wall_start, cpu_start = time.monotonic(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = export_policy(folder)
        direct = direct_p50_us(path, args.calls)
        keys = ensure_keys(folder)
        server = subprocess.Popen([sys.executable, "-c", SERVE, "serve", str(path), "--bind", "tcp://127.0.0.1:*",
                                   "--keys", str(keys), "--batch-window-us", str(args.batch_window_us)],
                                  stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        try:
            endpoint = json.loads(server.stdout.readline())["endpoint"]
            single = closed_loop(endpoint, str(keys), seconds=60.0, calls=args.calls)
            with PolicyClient(endpoint, keys) as client:
                single_server = client.stats()
            spawn = multiprocessing.get_context("spawn")
            queue = spawn.Queue()
            actors = [spawn.Process(target=closed_loop, args=(endpoint, str(keys), args.seconds, 10**9, queue))
                      for _ in range(args.actors)]
            for actor in actors:
                actor.start()
            results = [queue.get(timeout=args.seconds + 120) for _ in actors]
            for actor in actors:
                actor.join()
            with PolicyClient(endpoint, keys) as client:
                after = client.stats()
        finally:
            server.send_signal(2)
            server.communicate(timeout=30)
    p50, p99 = percentiles_us(single)
    batches = {int(k): v - int(single_server["batch_requests"].get(k, 0)) for k, v in after["batch_requests"].items()}
    cpu_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "bench": "policy_server", "policy": f"{STATE_DIM}->{'->'.join(map(str, HIDDEN))}->{ACTION_DIM} onnx, state",
        "transport": "zmq tcp loopback, CURVE", "p50_us": p50, "p99_us": p99, "calls": len(single),
        "server_p50_us": single_server["latency_us"]["p50"], "server_p99_us": single_server["latency_us"]["p99"],
        "server_inference_p50_us": single_server["inference_us"]["p50"],
        "direct_p50_us": direct,
        "throughput_4_actors_rps": round(sum(results) / args.seconds, 1) if args.actors == 4 else None,
        "actors": args.actors, "actor_seconds": args.seconds, "batch_window_us": args.batch_window_us,
        "batch_requests_4_actors": {str(k): v for k, v in sorted(batches.items()) if v},
        "server_p99_us_4_actors": after["latency_us"]["p99"],
        "wall_s": round(time.monotonic() - wall_start, 1),
        "cpu_s": round(time.process_time() - cpu_start + cpu_children.ru_utime + cpu_children.ru_stime, 1),
        "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
