"""Shared fixtures: a franky-sim server (real libfranka protocol, MuJoCo physics) on a loopback address."""

from __future__ import annotations

import pytest
from arm_motion import TABLE_TOP_Z_M


@pytest.fixture(scope="module")
def franky_sim_host():
    pytest.importorskip("franky", reason="franky-control is not installed (pip install franky-control)")
    pytest.importorskip("franky_sim", reason="franky-sim is not installed (pip install franky-sim)")
    from drivers.arms.franky_sim_twin import FrankySimProcess

    server = FrankySimProcess(table_top_z_m=TABLE_TOP_Z_M)
    host = server.start()
    yield host
    server.stop()

