"""The policy server: one policy behind an authenticated ZeroMQ socket, for several actors at once.

A CURVE ROUTER (keys and ZAP handling from ``robot_rl/transport/keys.py``) answers DEALER clients.
Messages are ``robot_rl/transport/wire.py`` frames (msgpack header + raw buffers):

- ``act`` {id} + observation arrays with a batch axis (``state`` float32[n,S], cameras uint8[n,H,W,3])
  -> ``action`` {id, version, queue_us, inference_us, batch_requests} + ``action`` float32[n,A],
  normalized to [-1, 1]. Request/reply waits for each reply; streaming sends observations without
  waiting and matches the pushed actions by id (``PolicyClient.submit``/``receive``).
- ``weights`` {id, version} + blob ``weights`` -> ``weights_ok`` {id, version}: a hot swap between two
  batches. A version not newer than the served one, or weights whose tensors do not match the
  policy's, are refused and the old weights keep serving.
- ``info`` -> the observation/action layout and version; ``stats`` -> latency percentiles
  (queue + inference, server side), batch-size histogram, requests/s, errors by reason.
- Anything malformed -> ``error`` {id, reason, detail}; the server keeps serving.

Batching: every request already queued when a batch starts joins it (up to ``max_batch``
observations), so concurrent actors share one ``act_batch`` call; ``batch_window_us`` > 0 also
waits that long for more (rounded up to whole milliseconds, zmq's poll unit), trading a lone
client's latency for larger batches.

Hot swaps come as ``weights`` messages from any authorized client, or, with ``follow_run``, from
the learner itself: the server joins the learner's link as an actor that sends no transitions
(``ActorLink``), so the learner sends it each new version as it does to actors.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import zmq

from robot_rl.spaces import ObsSpec
from robot_rl.transport.keys import ZapAuthenticator, make_curve_client, make_curve_server
from robot_rl.transport.wire import WireError, decode, encode

DEFAULT_MAX_BATCH = 64
LATENCY_WINDOW = 20_000  # requests kept for the percentiles
RATE_WINDOW_S = 2.0  # requests/s is measured over the last this many seconds
FOLLOW_CONNECT_S = 30.0  # how long a following server waits for the learner to write endpoints.json


class WeightsRejected(ValueError):
    """Weights that cannot replace the served ones; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class PolicyServerError(RuntimeError):
    """The server answered a request with an error."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class PolicyTimeout(TimeoutError):
    """No reply in time: the server is down, unreachable, or refused this client's key."""


@runtime_checkable
class ServedPolicy(Protocol):
    """What the server needs from a policy (base, residual, world-model planner, ...)."""

    obs_spec: ObsSpec
    action_dim: int
    version: int

    def act_batch(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """{"state": float32[B,S], camera: uint8[B,H,W,3]} -> normalized actions float32[B,A] in [-1, 1]."""

    def load_weights(self, blob: bytes, version: int) -> None:
        """Replace the weights; raise ``WeightsRejected`` (old weights intact) when they do not fit."""


# ----- adapters ----------------------------------------------------------------------------------
class CallablePolicy:
    """Any batched function as a served policy, e.g. a residual policy or a world-model planner."""

    def __init__(self, fn: Callable[[dict[str, np.ndarray]], np.ndarray], obs_spec: ObsSpec, action_dim: int,
                 version: int = 0, load_fn: Callable[[bytes, int], None] | None = None):
        self.fn, self.obs_spec, self.action_dim, self.version, self.load_fn = fn, obs_spec, action_dim, version, load_fn

    def act_batch(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self.fn(obs), np.float32)

    def load_weights(self, blob: bytes, version: int) -> None:
        if self.load_fn is None:
            raise WeightsRejected("no_weights", "this policy takes no weights")
        self.load_fn(blob, version)
        self.version = version


def _onnx_signature(model) -> dict[str, list]:
    """Graph inputs/outputs and weight tensors, name -> shape: what a replacement export must keep."""

    def dims(value_info) -> list:
        return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]

    signature = {f"input:{v.name}": dims(v) for v in model.graph.input}
    signature.update({f"output:{v.name}": dims(v) for v in model.graph.output})
    signature.update({f"weight:{t.name}": list(t.dims) for t in model.graph.initializer})
    return signature


def describe_mismatch(current: dict, offered: dict) -> str:
    """One sentence naming what differs between two name -> shape maps ('' when they agree)."""
    missing, extra = sorted(set(current) - set(offered)), sorted(set(offered) - set(current))
    reshaped = sorted(k for k in set(current) & set(offered) if list(current[k]) != list(offered[k]))
    parts = [f"missing {missing[:3]}" if missing else "", f"unexpected {extra[:3]}" if extra else "",
             ", ".join(f"{k} is {list(offered[k])} instead of {list(current[k])}" for k in reshaped[:3])]
    return "; ".join(p for p in parts if p)


class OnnxServedPolicy:
    """An exported ONNX policy (``robot-rl export``); its weights are a whole replacement export.

    The graph outputs env units; the server's unit is the normalized action, so the export's bounds
    (``action_low``/``action_high`` in its embedded spec) are undone after inference.
    """

    def __init__(self, path: str | Path, threads: int = 1):
        import onnx

        from policies.export.onnx_export import make_session, read_spec

        self.path = Path(path)
        self.session = make_session(self.path, threads)
        self.spec = read_spec(self.path)
        self.signature = _onnx_signature(onnx.load(str(self.path)))
        self.threads = threads
        self.obs_spec = ObsSpec.from_dict(self.spec["obs_spec"])
        if "action_low" not in self.spec:
            raise ValueError(f"{path} has no action bounds in its spec, so its actions cannot be normalized: "
                             "export it again with robot-rl export")
        low, high = np.asarray(self.spec["action_low"], np.float32), np.asarray(self.spec["action_high"], np.float32)
        self.action_dim = len(low)
        self.action_low, self.action_high = low, high
        self.action_scale, self.action_bias = (high - low) / 2.0, (high + low) / 2.0
        self.version = int(self.spec.get("policy_version", 0))
        self.input_names = [i.name for i in self.session.get_inputs()]

    def act_batch(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        actions = self.session.run(["action"], {name: obs[name] for name in self.input_names})[0]
        return (actions - self.action_bias) / self.action_scale

    def load_weights(self, blob: bytes, version: int) -> None:
        import onnx

        from policies.export.onnx_export import ExportError, make_session, read_spec

        try:
            model = onnx.load_from_string(blob)
        except Exception:  # protobuf raises several types for bytes that are not a model
            raise WeightsRejected("not_onnx", "an ONNX policy's weights are a whole exported .onnx file "
                                  "(robot-rl export); to follow the learner's weights serve the run with --policy sac") from None
        signature = _onnx_signature(model)
        problem = describe_mismatch(self.signature, signature)
        if problem:
            raise WeightsRejected("weights_mismatch", f"the new export does not match the served one: {problem}")
        fd, tmp = tempfile.mkstemp(suffix=".onnx")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
            try:
                spec = read_spec(tmp)
            except ExportError as err:
                raise WeightsRejected("weights_mismatch", str(err)) from None
            if [spec.get(k) for k in ("action_low", "action_high")] != [self.spec[k] for k in ("action_low", "action_high")]:
                raise WeightsRejected("weights_mismatch", "the new export has other action bounds than the served one")
            session = make_session(tmp, self.threads)
        finally:
            os.unlink(tmp)
        self.session, self.spec, self.version = session, spec, version


class SacServedPolicy:
    """The SAC actor (``robot_rl.acting.ActingPolicy``), deterministic; weights are the learner's safetensors."""

    def __init__(self, acting, action_dim: int, version: int = 0):
        import torch

        self.torch = torch
        self.acting, self.obs_spec, self.action_dim, self.version = acting, acting.spec, action_dim, version
        deploy = acting.deploy  # its rescaling buffers hold the env's bounds, for clients that want env units
        self.action_low = (deploy.action_bias - deploy.action_scale).numpy()
        self.action_high = (deploy.action_bias + deploy.action_scale).numpy()
        self.shapes = {name: list(t.shape) for name, t in self._state().items()}

    @classmethod
    def from_run(cls, run_dir: str | Path) -> "SacServedPolicy":
        """The run's final policy (else its newest checkpoint), at the version ``learner_status.json`` reports."""
        import json

        from robot_rl.commands.export import load_run_policy

        run, _config, env, _spec, acting, _source = load_run_policy(run_dir)
        action_dim = int(env.action_space.shape[0])
        env.close()
        status = json.loads(run.status.read_text()) if run.status.exists() else {}
        return cls(acting, action_dim, int(status.get("policy_version", 0)))

    def _state(self) -> dict:
        state = {f"encoder.{k}": v for k, v in self.acting.encoder.state_dict().items()}
        state.update({f"actor.{k}": v for k, v in self.acting.actor.state_dict().items()})
        return state

    def act_batch(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        with self.torch.no_grad():
            # arrays read off the wire are read-only views of the message; torch wants its own copy then
            features = self.acting.encoder({k: self.torch.from_numpy(v if v.flags.writeable else v.copy())
                                            for k, v in obs.items()})
            return self.acting.actor.deterministic(features).numpy()

    def load_weights(self, blob: bytes, version: int) -> None:
        from robot_rl.acting import weights_from_bytes

        try:
            state = weights_from_bytes(blob)
        except Exception:  # safetensors raises its own error type for bytes that are not safetensors
            raise WeightsRejected("not_safetensors", "SAC weights are a safetensors blob of encoder.* and actor.* "
                                  "tensors, as the learner publishes them") from None
        problem = describe_mismatch(self.shapes, {name: list(t.shape) for name, t in state.items()})
        if problem:
            raise WeightsRejected("weights_mismatch", f"the weights do not fit the served network: {problem}")
        self.acting.load(state, version)
        self.version = version


# ----- server ------------------------------------------------------------------------------------
def _percentiles(values) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0}
    p50, p99 = np.percentile(np.fromiter(values, np.float64, len(values)), [50, 99])
    return {"p50": round(float(p50), 1), "p99": round(float(p99), 1)}


def _zero_copy(frames: list[bytes]) -> bool:
    """pyzmq's zero-copy send costs more than a copy below some tens of kB (its docs); images pass it."""
    return sum(len(f) for f in frames) > 64 * 1024


class _Request:
    __slots__ = ("identity", "request_id", "obs", "samples", "received_ns")

    def __init__(self, identity: bytes, request_id: int, obs: dict[str, np.ndarray], received_ns: int):
        self.identity, self.request_id, self.obs, self.received_ns = identity, request_id, obs, received_ns
        self.samples = len(obs["state"])


class PolicyServer:
    """Serves ``policy`` on ``bind``; ``start()`` runs it on a thread, ``serve_forever()`` in the caller's."""

    def __init__(self, policy: ServedPolicy, keys: str | Path, bind: str = "tcp://127.0.0.1:*",
                 batch_window_us: float = 0.0, max_batch: int = DEFAULT_MAX_BATCH, follow_run: str | Path | None = None,
                 follow_client: str = "actor", kind: str = ""):
        self.policy, self.keys = policy, Path(keys)
        self.batch_window_ns, self.max_batch = int(batch_window_us * 1000), max_batch
        self.kind = kind or type(policy).__name__
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a reply to a client that left is dropped, not an error
        self.socket.setsockopt(zmq.MAXMSGSIZE, 256 * 1024 * 1024)  # larger frames are dropped before allocation
        try:
            make_curve_server(self.socket, self.keys)
        except FileNotFoundError:
            self.socket.close()
            self.context.term()
            raise
        self.zap = ZapAuthenticator(self.context, self.keys)  # answers handshakes from the first bind on
        self.learner_link = None
        try:
            self.socket.bind(bind)
        except zmq.ZMQError as err:
            self._close_sockets()
            raise ValueError(f"cannot listen on {bind} ({err}): pass another endpoint, e.g. --bind tcp://*:5561") from None
        self.endpoint = self.socket.getsockopt(zmq.LAST_ENDPOINT).decode()
        if follow_run is not None:
            from robot_rl.transport.link import ActorLink

            self.learner_link = ActorLink(Path(follow_run), "policy_server", self.context, client=follow_client)
            self.learner_link.policy_version = policy.version
            try:
                self.learner_link.connect(timeout_s=FOLLOW_CONNECT_S)
            except TimeoutError:
                self._close_sockets()
                raise TimeoutError(f"no learner endpoint appeared in {Path(follow_run) / 'endpoints.json'} within "
                                   f"{FOLLOW_CONNECT_S:.0f} s: start that run's learner first, or serve without --follow") from None
        self.pending: deque[_Request] = deque()
        self.errors: Counter = Counter()
        self.weights_swaps, self.weights_rejected = 0, Counter()
        self.server_us: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.queue_us: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.inference_us: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self.batch_requests: Counter = Counter()
        self.finished_ns: deque[int] = deque(maxlen=LATENCY_WINDOW)
        self.requests = self.samples = 0
        self.started_ns = time.monotonic_ns()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the statistics that stats() reads from another thread

    # ----- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "PolicyServer":
        self._thread = threading.Thread(target=self.serve_forever, name="policy_server", daemon=True)
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        """Serving on its thread (False once closed, or if the loop died)."""
        return self._thread is not None and self._thread.is_alive()

    def serve_forever(self) -> None:
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not self.pending and not poller.poll(20):
                    self._follow()
                    continue
                self._drain()
                if self.pending and self.batch_window_ns:
                    self._wait_for_more()
                if self.pending:
                    self._run_batch()
                self._follow()
        finally:
            self._close_sockets()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        elif not self.socket.closed:
            self._close_sockets()

    def _close_sockets(self) -> None:
        if self.learner_link is not None:
            self.learner_link.close()
        self.zap.close()
        self.socket.close(linger=0)
        self.context.term()

    # ----- receiving -------------------------------------------------------------------------------
    def _queued_samples(self) -> int:
        return sum(r.samples for r in self.pending)

    def _drain(self) -> None:
        """Take every message already queued (requests join the next batch; the rest is answered now)."""
        while self._queued_samples() < self.max_batch and self.socket.poll(0):
            self._receive()

    def _wait_for_more(self) -> None:
        deadline = self.pending[0].received_ns + self.batch_window_ns
        while self._queued_samples() < self.max_batch:
            left_ms = (deadline - time.monotonic_ns()) / 1e6
            # zmq polls in whole milliseconds: a sub-millisecond rest of the window is rounded up
            if left_ms <= 0 or not self.socket.poll(math.ceil(left_ms)):
                return
            self._receive()

    def _receive(self) -> None:
        identity, *frames = self.socket.recv_multipart()
        received_ns = time.monotonic_ns()
        try:
            kind, header, arrays, blobs = decode(frames)
        except WireError as err:
            self._error(identity, None, err.reason, f"the message does not follow the wire format ({err})")
            return
        request_id = header.get("id")
        if not isinstance(request_id, int):
            self._error(identity, None, "no_id", "every request needs an integer 'id' in its header")
            return
        try:
            self._dispatch(identity, kind, request_id, header, arrays, blobs, received_ns)
        except Exception as err:  # a request nobody foresaw gets an answer; the server goes on serving
            self._error(identity, request_id, "internal_error", f"{type(err).__name__}: {str(err)[:200]}")

    def _dispatch(self, identity: bytes, kind: str, request_id: int, header: dict, arrays: dict, blobs: dict,
                  received_ns: int) -> None:
        if kind == "act":
            problem = self._check_obs(arrays)
            if problem:
                self._error(identity, request_id, "bad_obs", problem)
            else:
                self.pending.append(_Request(identity, request_id, arrays, received_ns))
        elif kind == "weights":
            self._run_batch_if_pending()  # requests that came before the new weights are answered by the old ones
            self._swap(identity, request_id, header.get("version"), blobs.get("weights"))
        elif kind == "stats":
            self._reply(identity, encode("stats", {"id": request_id, **self.stats()}))
        elif kind == "info":
            self._reply(identity, encode("info", {"id": request_id, **self.info()}))
        else:
            self._error(identity, request_id, "unknown_kind", f"'{kind[:40]}' is not one of act, weights, stats, info")

    def _check_obs(self, arrays: dict[str, np.ndarray]) -> str:
        """'' when ``arrays`` is a batch in the policy's layout, else one sentence saying what is wrong."""
        spec = self.policy.obs_spec
        expected = {"state": ((spec.state_dim,), np.float32), **{k: (tuple(s), np.uint8) for k, s in spec.image_shapes.items()}}
        if set(arrays) != set(expected):
            return f"observation keys {sorted(arrays)} are not the policy's {sorted(expected)}"
        batch = len(arrays["state"]) if arrays["state"].ndim else 0
        for key, (shape, dtype) in expected.items():
            array = arrays[key]
            if array.dtype != dtype or array.shape[1:] != shape or array.ndim != len(shape) + 1:
                wanted = f"{np.dtype(dtype).name}[n, {', '.join(map(str, shape))}]"
                return f"'{key}' is {array.dtype.name}{list(array.shape)}, expected {wanted}"
            if len(array) != batch:
                return f"'{key}' holds {len(array)} observations but 'state' holds {batch}"
        if not 1 <= batch <= self.max_batch:
            return f"a request holds 1 to {self.max_batch} observations, this one {batch}"
        if not np.all(np.isfinite(arrays["state"])):
            return "'state' holds NaN or inf"
        return ""

    # ----- answering -------------------------------------------------------------------------------
    def _reply(self, identity: bytes, frames: list[bytes]) -> None:
        self.socket.send_multipart([identity, *frames], copy=_zero_copy(frames))

    def _error(self, identity: bytes, request_id, reason: str, detail: str) -> None:
        with self._lock:
            self.errors[reason] += 1
        self._reply(identity, encode("error", {"id": request_id, "reason": reason, "detail": detail}))

    def _run_batch_if_pending(self) -> None:
        if self.pending:
            self._run_batch()

    def _run_batch(self) -> None:
        batch, samples = [], 0
        while self.pending and samples + self.pending[0].samples <= self.max_batch:
            request = self.pending.popleft()
            batch.append(request)
            samples += request.samples
        obs = {key: np.concatenate([r.obs[key] for r in batch]) if len(batch) > 1 else batch[0].obs[key]
               for key in batch[0].obs}
        start_ns = time.monotonic_ns()
        try:
            actions = np.asarray(self.policy.act_batch(obs), np.float32)
            problem = "" if actions.shape == (samples, self.policy.action_dim) else \
                f"the policy returned shape {list(actions.shape)} for {samples} observations"
            if not problem and not np.all(np.isfinite(actions)):
                problem = "the policy returned NaN or inf"
        except Exception as err:  # one failing batch must not end the server; the clients hear why
            problem = f"the policy raised {type(err).__name__}: {str(err)[:200]}"
        inference_ns = time.monotonic_ns() - start_ns
        if problem:
            for request in batch:
                self._error(request.identity, request.request_id, "policy_failed", problem)
            return
        version, offset = self.policy.version, 0
        for request in batch:
            header = {"id": request.request_id, "version": version, "queue_us": (start_ns - request.received_ns) / 1e3,
                      "inference_us": inference_ns / 1e3, "batch_requests": len(batch)}
            self._reply(request.identity, encode("action", header, {"action": actions[offset:offset + request.samples]}))
            offset += request.samples
        done_ns = time.monotonic_ns()
        with self._lock:
            self.requests += len(batch)
            self.samples += samples
            self.batch_requests[len(batch)] += 1
            self.inference_us.append(inference_ns / 1e3)
            for request in batch:
                self.queue_us.append((start_ns - request.received_ns) / 1e3)
                self.server_us.append((done_ns - request.received_ns) / 1e3)
                self.finished_ns.append(done_ns)

    def _swap(self, identity: bytes | None, request_id, version, blob) -> bool:
        """Load ``blob`` as ``version`` if it is newer and fits; answer ``identity`` (None: the learner)."""
        current = self.policy.version
        try:
            if not isinstance(version, int) or isinstance(version, bool) or not isinstance(blob, bytes):
                raise WeightsRejected("bad_weights_message", "a weights message needs an integer 'version' and a 'weights' blob")
            if version <= current:
                raise WeightsRejected("stale_version", f"version {version} is not newer than the served version {current}")
            try:
                self.policy.load_weights(blob, version)
            except WeightsRejected:
                raise
            except Exception as err:  # a policy that did not check its weights itself must not end the server
                raise WeightsRejected("load_failed", f"loading them raised {type(err).__name__}: {str(err)[:200]}") from None
        except WeightsRejected as err:
            with self._lock:
                self.weights_rejected[err.reason] += 1
            if identity is not None:  # counted in weights_rejected, not in errors
                self._reply(identity, encode("error", {"id": request_id, "reason": err.reason,
                                                       "detail": f"{err}; still serving version {current}"}))
            return False
        with self._lock:
            self.weights_swaps += 1
        if identity is not None:
            self._reply(identity, encode("weights_ok", {"id": request_id, "version": version}))
        return True

    def _follow(self) -> None:
        """Take the learner's newest weights, if following one."""
        link = self.learner_link
        if link is None:
            return
        link.pump()
        if link.weights is not None:
            version, blob, _ = link.weights
            link.weights = None
            self._run_batch_if_pending()
            self._swap(None, None, version, blob)
            link.policy_version = self.policy.version

    # ----- reports ---------------------------------------------------------------------------------
    def info(self) -> dict:
        spec = self.policy
        info = {"kind": self.kind, "version": spec.version, "obs_spec": spec.obs_spec.to_dict(),
                "action_dim": spec.action_dim, "max_batch": self.max_batch, "action": "normalized to [-1, 1]"}
        for bound in ("action_low", "action_high"):
            if getattr(spec, bound, None) is not None:
                info[bound] = [float(x) for x in getattr(spec, bound)]
        return info

    def stats(self) -> dict:
        """Server-side latency (receipt to reply, and its queue part), batching, throughput, refusals."""
        now_ns = time.monotonic_ns()
        with self._lock:
            recent = [t for t in self.finished_ns if now_ns - t <= RATE_WINDOW_S * 1e9]
            span_s = min(RATE_WINDOW_S, (now_ns - self.started_ns) / 1e9)
            return {
                "version": self.policy.version, "requests": self.requests, "samples": self.samples,
                "requests_per_s": round(len(recent) / span_s, 1) if span_s > 0 else 0.0,
                "latency_us": _percentiles(self.server_us), "queue_us": _percentiles(self.queue_us),
                "inference_us": _percentiles(self.inference_us),
                "batch_requests": {str(k): v for k, v in sorted(self.batch_requests.items())},
                "errors": dict(self.errors), "weights_swaps": self.weights_swaps,
                "weights_rejected": dict(self.weights_rejected),
                "refused_peers": dict(self.zap.refused), "uptime_s": round((now_ns - self.started_ns) / 1e9, 1),
            }


# ----- client ------------------------------------------------------------------------------------
class PolicyClient:
    """A DEALER to a policy server with the run's CURVE keys (``keys`` folder, ``client`` pair name).

    One client per thread (a ZeroMQ socket is not thread-safe); each actor process holds its own.
    """

    def __init__(self, endpoint: str, keys: str | Path, client: str = "actor", timeout_ms: float = 2000.0,
                 context: zmq.Context | None = None):
        self.endpoint, self.timeout_ms = endpoint, timeout_ms
        self._own_context = context is None
        self.context = context or zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        make_curve_client(self.socket, Path(keys), client)
        self.socket.connect(endpoint)
        self._ids = itertools.count(1)
        self.streamed: deque[tuple[str, dict, dict]] = deque()  # streamed replies that arrived during a request
        self.in_flight: set[int] = set()  # ids submitted by streaming and not yet received

    def _send(self, kind: str, header: dict | None = None, arrays: dict | None = None, blobs: dict | None = None) -> int:
        request_id = next(self._ids)
        frames = encode(kind, {"id": request_id, **(header or {})}, arrays, blobs)
        self.socket.send_multipart(frames, copy=_zero_copy(frames))
        return request_id

    def _next_reply(self, timeout_ms: float) -> tuple[str, dict, dict]:
        if not self.socket.poll(timeout_ms):
            raise PolicyTimeout(f"no reply from the policy server at {self.endpoint} within {timeout_ms:.0f} ms: check that "
                                "`robot-rl serve` runs there and that this machine has the run's keys folder "
                                "(a refused key looks like silence)")
        kind, header, arrays, _ = decode(self.socket.recv_multipart())
        return kind, header, arrays

    def _request(self, kind: str, header=None, arrays=None, blobs=None, timeout_ms: float | None = None) -> tuple[str, dict, dict]:
        request_id = self._send(kind, header, arrays, blobs)
        deadline = time.monotonic() + (timeout_ms or self.timeout_ms) / 1e3
        while True:
            left_ms = max(0.0, 1e3 * (deadline - time.monotonic()))
            reply = self._next_reply(left_ms)
            if reply[1].get("id") == request_id:
                break
            if reply[1].get("id") is None and reply[0] == "error":  # the server could not read our id back
                break
            if reply[1].get("id") in self.in_flight:  # anything else is a late answer to a request that timed out
                self.streamed.append(reply)
        kind, header, arrays = reply
        if kind == "error":
            raise PolicyServerError(header.get("reason", "error"), header.get("detail", ""))
        return kind, header, arrays

    @staticmethod
    def _batched(obs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
        single = np.ndim(obs["state"]) == 1
        return ({k: np.asarray(v)[None] for k, v in obs.items()} if single else obs), single

    def act(self, obs: dict[str, np.ndarray], timeout_ms: float | None = None) -> tuple[np.ndarray, int]:
        """One observation (or a batch with a leading axis) -> (normalized action(s), policy version)."""
        batch, single = self._batched(obs)
        _, header, arrays = self._request("act", arrays=batch, timeout_ms=timeout_ms)
        action = arrays["action"]
        return (action[0] if single else action), int(header["version"])

    def submit(self, obs: dict[str, np.ndarray]) -> int:
        """Streaming: send an observation without waiting; ``receive`` returns its action, tagged with this id."""
        batch, _ = self._batched(obs)
        request_id = self._send("act", arrays=batch)
        self.in_flight.add(request_id)
        return request_id

    def receive(self, timeout_ms: float | None = None) -> tuple[int, np.ndarray, dict]:
        """The next streamed reply: (request id, actions float32[n,A], header with version and server timing)."""
        deadline = time.monotonic() + (timeout_ms or self.timeout_ms) / 1e3
        while True:
            if self.streamed:
                kind, header, arrays = self.streamed.popleft()
            else:
                kind, header, arrays = self._next_reply(max(0.0, 1e3 * (deadline - time.monotonic())))
            if header.get("id") in self.in_flight or (kind == "error" and header.get("id") is None):
                break  # anything else is a late answer to a request that timed out
        self.in_flight.discard(header.get("id"))
        if kind == "error":
            raise PolicyServerError(header.get("reason", "error"), f"request {header.get('id')}: {header.get('detail', '')}")
        return int(header["id"]), arrays["action"], header

    def push_weights(self, blob: bytes, version: int, timeout_ms: float | None = None) -> int:
        """Hot-swap the served weights; raises ``PolicyServerError`` when refused (the old ones keep serving)."""
        _, header, _ = self._request("weights", {"version": int(version)}, blobs={"weights": blob},
                                     timeout_ms=timeout_ms or max(self.timeout_ms, 10_000.0))
        return int(header["version"])

    def stats(self) -> dict:
        return self._request("stats")[1]

    def info(self) -> dict:
        return self._request("info")[1]

    def close(self) -> None:
        self.socket.close(linger=0)
        if self._own_context:
            self.context.term()

    def __enter__(self) -> "PolicyClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
