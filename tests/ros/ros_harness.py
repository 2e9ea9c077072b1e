"""Helpers for tests/ros: nodes in their own processes, a probe node in the test process, one ROS domain per run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PIP_LINE = "pip install ros-rclpy==7.1.6 ros-std-msgs==5.3.6 ros-sensor-msgs==5.3.6 ros-geometry-msgs==5.3.6 ros-diagnostic-msgs==5.3.6 ros-rmw-fastrtps-cpp==8.4.3"
REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "ros_ws" / "src" / "robot_rl_ros"


def require_rclpy():
    try:
        import rclpy  # noqa: F401
    except ImportError:
        pytest.skip(f"rclpy is not installed; {PIP_LINE}", allow_module_level=True)


def isolate_domain() -> None:
    """A ROS domain of our own (parallel runs do not hear each other), discovery on this host only."""
    os.environ["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_DIR), str(REPO), os.environ.get("PYTHONPATH", "")])
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(PACKAGE_DIR / "robot_rl_ros" / "fastdds_profile.xml"))
    sys.path.insert(0, str(PACKAGE_DIR))


def _yaml_value(value) -> str:
    import json

    return json.dumps(value)  # JSON is YAML


class NodeProcess:
    """`python -m robot_rl_ros.<module>` with a parameter file; stopped with SIGINT like Ctrl-C."""

    def __init__(self, module: str, params: dict, tmp_path: Path, name: str | None = None, namespace: str = ""):
        name = name or module
        params_file = tmp_path / f"{name}.params.yaml"
        lines = ["/**:", "  ros__parameters:"] + [f"    {k}: {_yaml_value(v)}" for k, v in params.items()]
        params_file.write_text("\n".join(lines) + "\n")
        self.log_path = tmp_path / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"robot_rl_ros.{module}", "--ros-args", "--params-file", str(params_file), *(["-r", f"__ns:={namespace}"] if namespace else [])],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO,
        )

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def assert_running(nodes) -> None:
    """Fail with the node's log as soon as one of `nodes` has exited."""
    for node in nodes:
        if node.proc.poll() is not None:
            raise AssertionError(f"{node.log_path.name} exited:\n{node.log()[-3000:]}")


class Probe:
    """A node in the test process that records what it hears and publishes what a test sends."""

    def __init__(self, name: str = "probe"):
        import rclpy

        self.rclpy = rclpy
        self.node = rclpy.create_node(name)
        self.heard: dict[str, list] = {}

    def listen(self, msg_type, topic: str, qos):
        self.heard[topic] = []
        self.node.create_subscription(msg_type, topic, lambda msg: self.heard[topic].append(msg), qos)
        return self.heard[topic]

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.rclpy.spin_once(self.node, timeout_sec=0.01)

    def spin_until(self, condition, timeout_s: float = 10.0, nodes: list[NodeProcess] = ()) -> bool:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if condition():
                return True
            assert_running(nodes)
            self.rclpy.spin_once(self.node, timeout_sec=0.01)
        return condition()

    def close(self) -> None:
        self.node.destroy_node()


def diagnostic_values(diagnostics: list, node_name: str) -> tuple[int, str, dict[str, str]] | None:
    """(level, message, values) of the newest status the named node published, or None."""
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name == f"robot_rl/{node_name}":
                return status.level[0] if isinstance(status.level, bytes) else int(status.level), status.message, {kv.key: kv.value for kv in status.values}
    return None
