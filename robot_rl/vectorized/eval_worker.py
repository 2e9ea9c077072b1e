"""Periodic hover evaluations on the second core: a child process that flies snapshots of the actor.

A 200-episode evaluation costs about half a second of numpy on one core, as much as ~300 TD3
updates. Run in the training process, frequent evaluations eat the wall-time budget; run here,
on the core the single-threaded trainer leaves idle, they only slow it through the shared cores
(300k env steps: 66.9 s with evaluations every 5k, 59.5 s without), so the trainer can evaluate
often and stop (or keep the best snapshot) as soon as a snapshot is good enough.

Wire, both ways length-prefixed bytes on the child's stdin/stdout (no pickle):
  parent -> child  frame = u32 header length, JSON header, u32 body length, body
                   first frame: {"kind": "hello", "config": VectorSessionConfig as JSON}
                   then:        {"kind": "evaluate", "index", "seed", "episodes"} + actor weights (safetensors)
  child -> parent  one JSON line per evaluation: {"index", "success_rate", "mean_return", "eval_s", "cpu_s"}
                   or {"index", "error"}.
Run as ``python -m robot_rl.vectorized.eval_worker``; the child's own prints go to stderr.
"""

from __future__ import annotations

import json
import os
import select
import struct
import subprocess
import sys
import time

import torch

_LENGTH = struct.Struct(">I")


def _write_frame(stream, header: dict, body: bytes = b"") -> None:
    encoded = json.dumps(header).encode()
    stream.write(_LENGTH.pack(len(encoded)) + encoded + _LENGTH.pack(len(body)) + body)
    stream.flush()


def _read_exact(stream, count: int) -> bytes:
    data = stream.read(count)
    if data is None or len(data) != count:
        raise EOFError("the trainer closed the evaluation pipe")
    return data


def _read_frame(stream) -> tuple[dict, bytes]:
    header = json.loads(_read_exact(stream, _LENGTH.unpack(_read_exact(stream, 4))[0]))
    body = _read_exact(stream, _LENGTH.unpack(_read_exact(stream, 4))[0])
    return header, body


class EvalWorker:
    """The trainer's handle on the evaluation child: ``submit`` a snapshot when idle, ``poll`` for its result."""

    def __init__(self, config, startup_timeout_s: float = 120.0):
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.process = subprocess.Popen([sys.executable, "-m", "robot_rl.vectorized.eval_worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, env=env)
        self.busy_index: int | None = None
        self.startup_timeout_s = startup_timeout_s
        self.cpu_s = 0.0
        self._send({"kind": "hello", "config": config.model_dump(mode="json")})

    def _send(self, header: dict, body: bytes = b"") -> None:
        try:
            _write_frame(self.process.stdin, header, body)
        except (BrokenPipeError, ValueError):  # ValueError: the pipe was already closed
            code = self.process.poll()
            raise RuntimeError(f"the evaluation worker is not running (exit code {code}); its stderr above says why") from None

    @property
    def idle(self) -> bool:
        return self.busy_index is None

    def submit(self, index: int, actor: torch.nn.Module, seed: int, episodes: int) -> None:
        from safetensors.torch import save

        if not self.idle:
            raise RuntimeError("the evaluation worker is still busy with the previous snapshot")
        weights = save({name: tensor.detach().contiguous() for name, tensor in actor.state_dict().items()})
        self._send({"kind": "evaluate", "index": index, "seed": seed, "episodes": episodes}, weights)
        self.busy_index = index

    def poll(self, timeout_s: float = 0.0) -> dict | None:
        """The finished evaluation's result, or None if it is still running (waits up to ``timeout_s``)."""
        if self.idle:
            return None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        if not ready:
            if self.process.poll() is not None:
                raise RuntimeError(f"the evaluation worker exited with code {self.process.returncode}; its stderr "
                                   "above says why")
            return None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the evaluation worker exited (code {self.process.wait()}); its stderr above says why")
        result = json.loads(line)
        self.busy_index = None  # it answered, so it is ready for the next snapshot whatever the answer
        if "error" in result:
            raise RuntimeError(f"the evaluation worker failed: {result['error']}")
        self.cpu_s = result.get("cpu_s", self.cpu_s)
        return result

    def wait(self) -> dict | None:
        """Blocks until the running evaluation (if any) reports."""
        deadline = time.monotonic() + self.startup_timeout_s + 600.0
        while not self.idle:
            result = self.poll(timeout_s=1.0)
            if result is not None:
                return result
            if time.monotonic() > deadline:
                raise RuntimeError("the evaluation worker did not answer within 10 minutes")
        return None

    def close(self) -> None:
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def main() -> None:
    from safetensors.torch import load

    from robot_rl.vectorized.config import VectorSessionConfig
    from robot_rl.vectorized.loop import actor_policy, hover_task, make_agent
    from sim2real.quadrotor.evaluation import evaluate_hover

    torch.set_num_threads(1)
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else that prints goes to stderr, never into the reply stream
    hello, _ = _read_frame(requests)
    config = VectorSessionConfig.model_validate(hello["config"])
    agent, task = make_agent(config), hover_task(config)
    while True:
        try:
            header, body = _read_frame(requests)
        except EOFError:
            return
        try:
            agent.actor.load_state_dict(load(body))
            start = time.perf_counter()
            result = evaluate_hover(actor_policy(agent), task, int(header["episodes"]), seed=int(header["seed"]))
            reply = {"index": header["index"], "success_rate": result["success_rate"],
                     "mean_return": result["mean_return"], "eval_s": time.perf_counter() - start,
                     "cpu_s": time.process_time()}
        except Exception as error:  # noqa: BLE001 - the parent turns it into one clear error
            reply = {"index": header.get("index"), "error": f"{type(error).__name__}: {error}"}
        replies.write((json.dumps(reply) + "\n").encode())
        replies.flush()


if __name__ == "__main__":
    main()
