"""The doctor on this machine: real probes (franky-sim for the Franka check), one fix per missing piece."""

from __future__ import annotations

import json
import time

from drivers.doctor import doctor


def test_report_names_every_piece_and_a_fix_for_each_missing_one(franky_sim_host):
    t0 = time.monotonic()
    report = doctor(franka_host=franky_sim_host)
    elapsed_s = time.monotonic() - t0
    print("\n" + report.text() + f"\n(doctor took {elapsed_s:.2f} s)")
    names = [c.name for c in report.checks]
    for expected in ("RealSense", "V4L2 cameras", "SpaceMouse", "gamepad", "realtime kernel", "MuJoCo rendering", f"Franka at {franky_sim_host}"):
        assert expected in names
    by_name = {c.name: c for c in report.checks}
    assert by_name[f"Franka at {franky_sim_host}"].ok  # franky-sim speaks on libfranka's port
    assert by_name["python package franky-control"].ok
    for check in report.missing():
        assert check.fix, f"{check.name} is missing but has no fix"
    # the CI box has no camera, SpaceMouse or gamepad: the fixes spell out rules and packages
    if not by_name["SpaceMouse"].ok:
        assert 'ATTRS{idVendor}=="256f"' in by_name["SpaceMouse"].fix
    if not by_name["realtime kernel"].ok:
        assert "realtime" in by_name["realtime kernel"].fix
    json.dumps(report.to_dict())
    assert elapsed_s < 5.0


def test_unreachable_franka_says_what_to_do():
    report = doctor(franka_host="127.0.0.254", timeout_s=0.5)
    franka = report.checks[-1]
    assert franka.name == "Franka at 127.0.0.254" and not franka.ok
    assert "FCI" in franka.fix and not report.ok

