"""policy_server_node in its own process: announces its endpoint on ROS, answers CURVE clients over ZeroMQ
with the export's actions, and reports latency, batching, weight swaps and refusals on /diagnostics."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from ros_harness import NodeProcess, Probe, diagnostic_values, isolate_domain, require_rclpy

require_rclpy()
isolate_domain()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from policies.export.onnx_export import export_onnx  # noqa: E402
from policies.server import PolicyClient, PolicyServerError  # noqa: E402
from robot_rl.acting import ActingPolicy  # noqa: E402
from robot_rl.config import LearnerConfig  # noqa: E402
from robot_rl.spaces import ObsSpec  # noqa: E402
from robot_rl.transport.keys import ensure_keys  # noqa: E402
from robot_rl_ros.policy_server_node import ENDPOINT_QOS  # noqa: E402

torch.set_num_threads(1)
SPEC = ObsSpec(state_dim=10)
LOW, HIGH = -2 * np.ones(3, np.float32), 2 * np.ones(3, np.float32)


def export(path, seed: int):
    torch.manual_seed(seed)
    policy = ActingPolicy(SPEC, 3, LearnerConfig(hidden_dims=[32, 32]), LOW, HIGH)
    states = np.random.default_rng(0).normal(size=(8, SPEC.state_dim)).astype(np.float32)
    export_onnx(policy.deploy, {"obs_spec": SPEC.to_dict(), "action_dim": 3, "action_low": LOW.tolist(),
                                "action_high": HIGH.tolist()}, path, {"state": states})
    return path


def test_policy_server_node_serves_actions_and_reports_latency(tmp_path):
    onnx_path, newer = export(tmp_path / "policy.onnx", 0), export(tmp_path / "newer.onnx", 1)
    keys = ensure_keys(tmp_path / "run")
    rclpy.init()
    probe = Probe("policy_server_probe")
    endpoints = probe.listen(String, "/policy_server/endpoint", ENDPOINT_QOS)
    diagnostics = probe.listen(DiagnosticArray, "/diagnostics", QoSProfile(depth=50))
    node = NodeProcess("policy_server_node", {"policy": str(onnx_path), "bind": "tcp://127.0.0.1:*", "keys": str(keys)},
                       tmp_path)
    try:
        assert probe.spin_until(lambda: endpoints, 40.0, [node]), node.log()
        announced = json.loads(endpoints[0].data)
        assert announced["keys"] == str(keys) and announced["action_dim"] == 3
        states = np.random.default_rng(1).normal(size=(20, SPEC.state_dim)).astype(np.float32)
        direct = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(["action"], {"state": states})[0]
        with PolicyClient(announced["endpoint"], keys, timeout_ms=10_000) as client:
            served = np.stack([client.act({"state": state})[0] for state in states])
            assert np.max(np.abs(served * 2.0 - direct)) <= 1e-6  # normalized: the bounds are +-2
            with pytest.raises(PolicyServerError, match="stale_version"):
                client.push_weights(newer.read_bytes(), version=0)  # the export's own version is 0: not newer
            assert client.push_weights(newer.read_bytes(), version=1) == 1

        def reported() -> bool:
            found = diagnostic_values(diagnostics, "policy_server")
            return found is not None and found[2].get("requests") == "20" and found[2].get("version") == "1"

        assert probe.spin_until(reported, 10.0, [node]), (diagnostic_values(diagnostics, "policy_server"), node.log())
        level, message, values = diagnostic_values(diagnostics, "policy_server")
        assert level == 0 and message == "serving version 1"
        assert 0 < float(values["latency_us.p50"]) <= float(values["latency_us.p99"])
        assert values["rejected.stale_version"] == "1" and values["weights_swaps"] == "1"
        assert sum(int(k) * v for k, v in json.loads(values["batch_requests"]).items()) == 20
    finally:
        assert node.stop() == 0, node.log()
        probe.close()
        rclpy.shutdown()

