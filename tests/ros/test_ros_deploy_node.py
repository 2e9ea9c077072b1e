"""deploy_node in its own process: a tiny exported policy on the simulated pick-cube arm at 10 Hz, through real rclpy.

Checks the actions arrive at the export's rate, /diagnostics carries the runner's deadline statistics,
the e-stop makes the runner hold (counted as fallbacks.estop) and the summary JSON comes at the end.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
import yaml
from ros_harness import REPO, NodeProcess, Probe, diagnostic_values, isolate_domain, require_rclpy

require_rclpy()
isolate_domain()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from std_msgs.msg import Bool, Float32MultiArray, String  # noqa: E402

from robot_rl_ros.deploy_node import SUMMARY_QOS  # noqa: E402
from robot_rl_ros.launch_plan import plan  # noqa: E402
from robot_rl_ros.ros_io import COMMAND_QOS, ESTOP_QOS  # noqa: E402

torch.set_num_threads(1)
RATE_HZ = 10.0  # PickCube-v0's default control rate, which the export records
RUN_S = 6.0


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    import sys

    sys.path.insert(0, str(REPO / "tests" / "policies"))
    from export_runs import STATE_SESSION, make_run

    from robot_rl.commands.export import export_run

    root = tmp_path_factory.mktemp("deploy")
    run = make_run(root / "run", STATE_SESSION, demos=0)
    export_run(run.root, "onnx", root / "export")
    return root / "export"


def robot_file(tmp_path):
    data = yaml.safe_load((REPO / "launch" / "deploy_sim_pick_cube.yaml").read_text())
    data.update(name="sim_pick_cube_10hz", env_kwargs={"control_hz": RATE_HZ, "max_episode_steps": 200}, control_hz=RATE_HZ,
                stale_obs_ms=100, inference_budget_ms=50, watchdog_ms=300, realtime_priority=None)
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_deploy_node_acts_at_rate_reports_deadlines_and_holds_on_estop(export_dir, tmp_path):
    rclpy.init()
    probe = Probe("deploy_probe")
    estop_pub = probe.node.create_publisher(Bool, "/estop", ESTOP_QOS)
    actions = probe.listen(Float32MultiArray, "/deploy/action", COMMAND_QOS)
    twists = probe.listen(TwistStamped, "/target_twist", COMMAND_QOS)
    summaries = probe.listen(String, "/deploy/summary", SUMMARY_QOS)
    diagnostics = probe.listen(DiagnosticArray, "/diagnostics", QoSProfile(depth=50))
    arrivals: list[float] = []
    probe.node.create_subscription(Float32MultiArray, "/deploy/action", lambda _msg: arrivals.append(time.monotonic()), COMMAND_QOS)
    (shipped,) = plan("deploy_sim_pick_cube")  # launch/ros/deploy_sim_pick_cube.yaml, with this test's export and 10 Hz robot
    params = {**shipped.parameters, "export": str(export_dir), "robot": str(robot_file(tmp_path)), "seconds": RUN_S}
    node = NodeProcess("deploy_node", params, tmp_path)
    try:
        assert probe.spin_until(lambda: len(actions) >= 10, 40.0, [node]), node.log()
        # acting at the export's rate: the probe hears one action per period
        start = len(arrivals)
        probe.spin_for(1.5)
        window = arrivals[start:]
        rate_hz = (len(window) - 1) / (window[-1] - window[0])
        assert abs(rate_hz - RATE_HZ) < 0.2 * RATE_HZ, (rate_hz, node.log())

        estop_pub.publish(Bool(data=True))
        # held from the first action with no end-effector motion (a random policy never outputs exact zeros)
        assert probe.spin_until(lambda: np.allclose(actions[-1].data[:3], 0.0), 3.0, [node])
        held_from = len(actions)
        probe.spin_for(1.0)
        held = [np.array(m.data) for m in actions[held_from:]]
        estop_pub.publish(Bool(data=False))
        assert len(held) >= 7, len(held)
        # hold: no end-effector motion, the gripper as it was (hold_action [0, 0, 0, null])
        assert all(np.allclose(a[:3], 0.0) and a[3] == held[0][3] for a in held), held
        assert probe.spin_until(lambda: diagnostic_values(diagnostics, "deploy") is not None
                                and int(diagnostic_values(diagnostics, "deploy")[2]["fallbacks.estop"]) >= len(held), 5.0, [node])
        level, _message, values = diagnostic_values(diagnostics, "deploy")
        for key in ("period_error_us.p50", "period_error_us.p99", "inference_us.p50", "inference_us.p99", "misses",
                    "fallbacks.nan", "fallbacks.stale_obs", "fallbacks.overrun", "fallbacks.estop"):
            assert key in values, (key, values)
        assert 0.0 < float(values["inference_us.p50"]) <= float(values["inference_us.p99"]) < 50_000
        assert float(values["period_error_us.p99"]) < 50_000  # under half a 100 ms period, even on 2 shared cores
        # the twist the arm would get: the first three action entries scaled to m/s
        assert len(twists) > 10 and all(t.header.frame_id == "base" for t in twists)

        assert probe.spin_until(lambda: len(summaries) == 1, RUN_S + 10.0, [node]), node.log()
        summary = json.loads(summaries[0].data)
        assert summary["control_hz"] == RATE_HZ and summary["backend"] == "onnxruntime"
        assert abs(summary["steps"] - RUN_S * RATE_HZ) <= 2, summary
        assert summary["fallbacks"]["estop"] >= len(held)
        # the policy did not move the arm while held, and moved it otherwise (a fresh policy is not all zeros)
        moved = [np.abs(np.array(m.data[:3])).max() for m in actions]
        assert max(moved) > 1e-3
    finally:
        assert node.stop() == 0, node.log()
        probe.close()
        rclpy.shutdown()
    log = node.log_path.read_text()  # the process has exited: its whole output is in the file
    printed = [line for line in log.splitlines() if line.startswith("{")]
    assert printed and json.loads(printed[-1])["steps"] == summary["steps"], log
