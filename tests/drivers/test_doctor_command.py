"""`robot-rl doctor` as its argument parser and `run(args)` see it: real probes, franky-sim as the Franka."""

from __future__ import annotations

import argparse
import json

from robot_rl.commands import doctor as doctor_command


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="robot-rl")
    doctor_command.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["doctor", *argv])


def test_json_lists_every_device_and_the_reachable_franka(franky_sim_host, capsys):
    rc = doctor_command.run(parse("--franka-host", franky_sim_host, "--json"))
    report = json.loads(capsys.readouterr().out)
    checks = {c["name"]: c for c in report["checks"]}
    for expected in ("RealSense", "V4L2 cameras", "SpaceMouse", "gamepad", "realtime kernel", "python package franky-control"):
        assert expected in checks
    assert checks[f"Franka at {franky_sim_host}"]["ok"]  # franky-sim answers on libfranka's port
    assert all(c["fix"] for c in report["checks"] if not c["ok"])
    assert rc == (0 if report["ok"] else 1)


def test_text_names_an_unreachable_franka_and_its_fix(capsys):
    rc = doctor_command.run(parse("--franka-host", "127.0.0.254", "--timeout-s", "0.5"))
    out = capsys.readouterr().out
    assert rc == 1
    assert "[--] Franka at 127.0.0.254" in out
    assert "FCI" in out  # the fix line: activate FCI in Desk / check the IP
    assert "usable; fix: " in out and "Franka at 127.0.0.254" in out.splitlines()[-1]
