"""``robot-rl serve RUN_OR_ONNX [--bind tcp://*:5560] [--policy onnx|sac]``: serve a policy to actors over ZeroMQ.

An ``.onnx`` file (or an export directory) is served with onnxruntime; a run directory with
``--policy sac`` serves its SAC actor (final policy, else newest checkpoint) and, with
``--follow``, hot-swaps each new version the run's learner publishes. Clients authenticate with
the run's CURVE keys (``robot-rl keys RUN``). Prints the endpoint as one JSON line at start and
the server's statistics as one JSON line when stopped (Ctrl-C, SIGTERM or ``--seconds``).
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

POLICIES = ("onnx", "sac")


def resolve(target: str | Path, policy: str) -> tuple[Path, Path]:
    """(what to load, the run root whose keys folder authenticates clients) for ``target``.

    Raises ValueError with one sentence saying what to pass instead.
    """
    from policies.export.onnx_export import read_spec
    from robot_rl.rundir import RunDir

    target = Path(target)
    if policy == "sac":
        if not RunDir(target).config.is_file():
            raise ValueError(f"{target} is not a run directory (no config.yaml): "
                             "--policy sac serves a run written by robot-rl train.")
        return target, target
    onnx_path = target / "policy.onnx" if target.is_dir() else target
    if not onnx_path.is_file() and target.is_dir():
        onnx_path = RunDir(target).exports / "onnx" / "policy.onnx"
    if not onnx_path.is_file():
        raise ValueError(f"no exported policy at {target}: pass a policy.onnx, an export directory, or a run directory "
                         "exported with `robot-rl export RUN` (or serve the run's actor with --policy sac).")
    run = read_spec(onnx_path).get("training_run")
    run_root = Path(run) if run and (Path(run) / "config.yaml").is_file() else onnx_path.parent  # the export may travel alone
    return onnx_path, run_root


def make_server(target: str | Path, policy: str = "onnx", bind: str = "tcp://*:5560", keys: str | Path | None = None,
                batch_window_us: float = 0.0, max_batch: int = 64, follow: bool = False, threads: int = 1):
    """A ``PolicyServer`` for ``target`` (not yet serving); keys are created in ``RUN/keys`` when missing."""
    from policies.server import DEFAULT_MAX_BATCH, OnnxServedPolicy, PolicyServer, SacServedPolicy
    from robot_rl.transport.keys import ensure_keys

    source, run_root = resolve(target, policy)
    keys_folder = Path(keys) if keys else ensure_keys(run_root)
    if policy == "sac":
        import torch

        torch.set_num_threads(threads)
        served = SacServedPolicy.from_run(source)
    else:
        served = OnnxServedPolicy(source, threads)
    return PolicyServer(served, keys_folder, bind, batch_window_us, max_batch or DEFAULT_MAX_BATCH,
                        follow_run=run_root if follow else None, kind=policy)


def run(args) -> int:
    from policies.export.onnx_export import ExportError

    if args.follow and args.policy != "sac":
        print("robot-rl serve: --follow takes the learner's SAC weights; add --policy sac and pass the run directory.",
              file=sys.stderr)
        return 2
    try:
        server = make_server(args.target, args.policy, args.bind, args.keys, args.batch_window_us, args.max_batch,
                             args.follow, args.threads)
    except (ValueError, ExportError, FileNotFoundError, TimeoutError) as err:
        print(f"robot-rl serve: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"endpoint": server.endpoint, "keys": str(server.keys), "policy": args.policy,
                      **{k: server.info()[k] for k in ("version", "action_dim")}}), flush=True)
    stopping = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.append(True))
    server.start()
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
    while not stopping and (deadline is None or time.monotonic() < deadline):
        time.sleep(0.05)
    stats = server.stats()
    server.close()
    print(json.dumps(stats), flush=True)
    return 0


def register(sub) -> None:
    parser = sub.add_parser("serve", help="serve a policy to several actors over the authenticated ZeroMQ link")
    parser.add_argument("target", help="policy.onnx, an export directory, or a run directory (runs/<name>)")
    parser.add_argument("--bind", default="tcp://*:5560", help="endpoint to listen on (tcp://127.0.0.1:* picks a free port)")
    parser.add_argument("--policy", choices=POLICIES, default="onnx", help="onnx: an exported policy; sac: the run's SAC actor")
    parser.add_argument("--keys", help="CURVE keys folder (default: the run's keys/, created when missing)")
    parser.add_argument("--batch-window-us", type=float, default=0.0,
                        help="wait this long for more requests before a batch, rounded up to whole ms "
                             "(0: batch only what is already queued, best on a small CPU)")
    parser.add_argument("--max-batch", type=int, default=64, help="most observations in one inference call")
    parser.add_argument("--follow", action="store_true",
                        help="with --policy sac: hot-swap each version the run's learner publishes")
    parser.add_argument("--threads", type=int, default=1, help="inference threads (small machines: keep 1)")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (<= 0: until Ctrl-C)")
    parser.set_defaults(func=run)
