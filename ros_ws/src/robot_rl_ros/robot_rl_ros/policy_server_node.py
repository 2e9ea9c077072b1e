"""policy_server_node: `robot-rl serve` as a ROS 2 node (policies/server.py on its own thread).

Actors talk to the server over its CURVE-authenticated ZeroMQ socket, not over ROS: the node only
announces where it listens, latched on `policy_server/endpoint` (std_msgs/String, JSON with endpoint,
keys folder, policy kind, action size), and reports on /diagnostics every second: served version,
requests/s, latency p50/p99 (us, queue + inference), batch-size histogram, weight swaps, and errors,
refused weights and refused keys as `rejected.<reason>`.
"""

from __future__ import annotations

import json

from rclpy.node import Node
from std_msgs.msg import String

from robot_rl_ros.health import NodeHealth
from robot_rl_ros.ros_io import LATCHED_QOS, Diagnostics, declare, main_for

ENDPOINT_QOS = LATCHED_QOS  # latched: an actor that starts later still learns the endpoint


class PolicyServerNode(Node):
    def __init__(self):
        super().__init__("policy_server")
        policy = declare(self, "policy", "", "policy.onnx, an export directory, or a run directory (with policy_kind sac)")
        kind = declare(self, "policy_kind", "onnx", "onnx: an exported policy; sac: the run's SAC actor")
        bind = declare(self, "bind", "tcp://*:5560", "ZeroMQ endpoint to listen on (tcp://127.0.0.1:* picks a free port)")
        keys = declare(self, "keys", "", "CURVE keys folder (empty: the run's keys/, created when missing)")
        window_us = declare(self, "batch_window_us", 0.0, "wait this long for more requests before a batch, us")
        max_batch = declare(self, "max_batch", 64, "most observations in one inference call")
        follow = declare(self, "follow", False, "with policy_kind sac: hot-swap each version the run's learner publishes")
        if not policy:
            raise ValueError("policy_server_node needs the parameter policy: an exported policy.onnx (robot-rl export) "
                             "or, with policy_kind sac, a run directory.")
        from robot_rl.commands.serve import make_server  # after the parameter checks: it imports torch/onnxruntime

        self.server = make_server(policy, kind, bind, keys or None, window_us, max_batch, follow).start()
        self.health = NodeHealth()
        info = self.server.info()
        self.endpoint_pub = self.create_publisher(String, "policy_server/endpoint", ENDPOINT_QOS)
        self.endpoint_pub.publish(String(data=json.dumps({"endpoint": self.server.endpoint, "keys": str(self.server.keys),
                                                          "policy": kind, "action_dim": info["action_dim"]})))
        self.diagnostics = Diagnostics(self, self.health, extra=self._server_stats)
        self.get_logger().info(f"serving {policy} ({kind}, version {info['version']}) on {self.server.endpoint}")

    def _server_stats(self) -> None:
        stats = self.server.stats()
        self.health.rejected.clear()
        for group in ("errors", "weights_rejected", "refused_peers"):
            self.health.rejected.update(stats[group])
        self.health.extra.update({
            "version": stats["version"], "requests": stats["requests"], "requests_per_s": stats["requests_per_s"],
            "latency_us.p50": stats["latency_us"]["p50"], "latency_us.p99": stats["latency_us"]["p99"],
            "queue_us.p99": stats["queue_us"]["p99"], "inference_us.p50": stats["inference_us"]["p50"],
            "batch_requests": json.dumps(stats["batch_requests"]), "weights_swaps": stats["weights_swaps"],
        })
        if not self.server.alive:
            self.health.set_status(2, "the server loop stopped: restart the node")
        elif stats["refused_peers"]:
            self.health.set_status(1, f"serving version {stats['version']}; refused peers without an authorized key")
        else:
            self.health.set_status(0, f"serving version {stats['version']}")

    def close(self) -> None:
        self.server.close()


def main() -> None:
    main_for(PolicyServerNode)


if __name__ == "__main__":
    main()
