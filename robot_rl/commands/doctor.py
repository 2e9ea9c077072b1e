"""``robot-rl doctor [--franka-host IP] [--json]``: what is connected and usable, and how to fix what is not.

Lists the vendor SDKs, RealSense serials, V4L2 cameras, SpaceMouse, gamepads, the realtime kernel,
MuJoCo rendering and (with ``--franka-host``) whether the Franka's FCI answers; each missing piece
comes with its exact fix (Debian package, udev rule, limits file). Exit status 0 when everything
checked is usable, 1 otherwise, so scripts can gate a session on it.
"""

from __future__ import annotations

import json


def run(args) -> int:
    from drivers.doctor import doctor

    report = doctor(franka_host=args.franka_host, timeout_s=args.timeout_s)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report.text())
        missing = report.missing()
        print(f"\n{len(report.checks) - len(missing)} of {len(report.checks)} usable"
              + ("" if not missing else f"; fix: {', '.join(c.name for c in missing)}"))
    return 0 if report.ok else 1


def register(sub) -> None:
    parser = sub.add_parser("doctor", help="list connected devices and the exact fix for each missing one")
    parser.add_argument("--franka-host", help="also check that the Franka's FCI answers at this IP (e.g. 172.16.0.2)")
    parser.add_argument("--timeout-s", type=float, default=1.0, help="how long the Franka probe waits for an answer")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.set_defaults(func=run)
