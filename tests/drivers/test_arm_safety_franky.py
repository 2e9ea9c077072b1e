"""SafeArm (safety filter + watchdog) around FrankyArm, against a franky-sim server with a table."""

from __future__ import annotations

import pytest
from arm_motion import HOME_POS_M, HOME_QUAT_XYZW, drive_to

pytest.importorskip("franky", reason="franky-control is not installed (pip install franky-control)")

from drivers.arms.franky_arm import FrankyArm  # noqa: E402
from drivers.safety import SafeArm  # noqa: E402
from safety_scenarios import (  # noqa: E402,F401  (the scenarios are the tests of this file)
    SAFETY,
    test_force_limit_stops_latches_and_recovers,
    test_nonfinite_commands_are_rejected_and_the_last_good_one_kept,
    test_speed_and_acceleration_are_limited,
    test_watchdog_holds_when_commands_stop,
    test_workspace_box_clips_targets,
)


@pytest.fixture
def bounds():
    return {
        "box_overshoot_m": 0.003,
        "peak_speed_factor": 2.0,
        "hold_latency_ms": 700.0,
        "still_ms": 1000.0,
        "force_at_stop_n": 200.0,
    }


@pytest.fixture
def safe_arm(franky_sim_host):
    raw = FrankyArm(franky_sim_host, realtime="ignore")
    raw.connect()
    drive_to(raw, HOME_POS_M, HOME_QUAT_XYZW)  # unfiltered: back home quickly between tests
    raw.hold()
    safe = SafeArm(raw, SAFETY)
    safe.connect()
    yield safe
    safe.close()
