"""SafeArm (safety filter + watchdog) around the MuJoCo arm, with a table."""

from __future__ import annotations

import pytest
from arm_motion import TABLE_TOP_Z_M

pytest.importorskip("franky_sim", reason="franky-sim (the FR3 model) is not installed (pip install franky-sim)")

from drivers.arms.mujoco_arm import MujocoArm  # noqa: E402
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
        "hold_latency_ms": 300.0,
        "still_ms": 1000.0,
        "force_at_stop_n": 200.0,
    }


@pytest.fixture
def safe_arm():
    with SafeArm(MujocoArm(table_top_z_m=TABLE_TOP_Z_M), SAFETY) as safe:
        yield safe
