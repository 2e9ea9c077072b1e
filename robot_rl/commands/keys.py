"""``robot-rl keys RUN_DIR``: create the run's ZeroMQ CURVE keys (the learner also does this on first start)."""

from __future__ import annotations

from pathlib import Path


def run(args) -> int:
    from robot_rl.transport.keys import ensure_keys

    folder = ensure_keys(Path(args.run_dir), client=args.client)
    print(f"keys in {folder}: server.key(_secret) stay on the learner machine; give a robot's actor machine "
          f"server.key and {args.client}.key(_secret) (copy the keys folder into its run directory). Secret files are 0600.")
    return 0


def register(sub) -> None:
    parser = sub.add_parser("keys", help="create the CURVE keys that authenticate and encrypt the actor/learner link")
    parser.add_argument("run_dir", help="run directory, e.g. runs/pick_cube")
    parser.add_argument("--client", default="actor", help="name of the client key pair to create and authorize")
    parser.set_defaults(func=run)
