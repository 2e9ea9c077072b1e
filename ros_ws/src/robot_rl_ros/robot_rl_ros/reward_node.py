"""reward_node: the success classifier on camera image topics -> `reward` (Float64) and `success` (Bool).

Frames arrive on `/<camera>/image_raw` (sensor-data QoS) for every camera the checkpoint was trained
on; the classifier runs off the ROS thread (`RewardClassifierRunner`, newest frame wins) and the
latest result is published at `rate_hz`, with `reward/probability`. A human's button on
`reward/override` (std_msgs/Int8: 1 success, 0 failure, -1 back to the classifier) wins until cleared.
"""

from __future__ import annotations

from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import Bool, Float64, Int8

from robot_rl.reward.runner import RewardClassifierRunner
from robot_rl_ros.health import NodeHealth
from robot_rl_ros.image_check import image_array
from robot_rl_ros.ros_io import COMMAND_QOS, SENSOR_QOS, STATE_QOS, Diagnostics, declare, main_for, stamp_ns

OVERRIDE = {1: True, 0: False, -1: None}


class RewardNode(Node):
    def __init__(self):
        super().__init__("reward")
        checkpoint = declare(self, "checkpoint", "", "reward classifier checkpoint (robot-rl train-reward RUN)")
        image_size = declare(self, "image_size", 64, "session image size, px (a mismatching checkpoint is refused)")
        cameras = declare(self, "cameras", ["front"], "session cameras (the checkpoint's must be among them)")
        topic_template = declare(self, "image_topic", "/{camera}/image_raw", "image topic per camera")
        rate_hz = declare(self, "rate_hz", 10.0, "publish rate, Hz")
        if not checkpoint:
            raise ValueError("reward_node needs the parameter checkpoint: train one with `robot-rl train-reward RUN`.")
        self.runner = RewardClassifierRunner.from_checkpoint(checkpoint, image_size, cameras)
        self.image_hw = (int(image_size), int(image_size))
        self.health = NodeHealth()
        self.frames: dict[str, object] = {}
        self.frame_stamp_ns = 0
        for camera in self.runner.cameras:
            topic = topic_template.format(camera=camera)
            self.create_subscription(Image, topic, lambda msg, c=camera: self._on_image(c, msg), SENSOR_QOS)
        self.create_subscription(Int8, "reward/override", self._on_override, COMMAND_QOS)
        self.reward_pub = self.create_publisher(Float64, "reward", STATE_QOS)
        self.success_pub = self.create_publisher(Bool, "success", STATE_QOS)
        self.probability_pub = self.create_publisher(Float64, "reward/probability", STATE_QOS)
        self.create_timer(1.0 / rate_hz, self._publish)
        self.diagnostics = Diagnostics(self, self.health, extra=self._diagnostic_values)

    def _on_image(self, camera: str, msg: Image) -> None:
        array, reason = image_array(msg, "rgb8", self.image_hw)
        if reason is not None:
            self.health.reject(reason)
            return
        self.health.rate(f"image.{camera}").tick()
        self.frames[camera] = array
        self.frame_stamp_ns = max(self.frame_stamp_ns, stamp_ns(msg.header))
        if len(self.frames) == len(self.runner.cameras):  # a full set: score it, then wait for the next one
            self.runner.submit(dict(self.frames), self.frame_stamp_ns)
            self.frames = {}

    def _on_override(self, msg: Int8) -> None:
        if int(msg.data) not in OVERRIDE:
            self.health.reject("override_value")
            return
        self.runner.override(OVERRIDE[int(msg.data)])

    def _publish(self) -> None:
        reading = self.runner.latest()
        if reading is None:
            return
        self.reward_pub.publish(Float64(data=reading.reward))
        self.success_pub.publish(Bool(data=reading.success))
        self.probability_pub.publish(Float64(data=reading.probability))

    def _diagnostic_values(self) -> None:
        reading = self.runner.latest()
        self.health.set_status(0, "scoring" if reading is not None else "waiting for images")
        if reading is not None:
            self.health.extra = {"latency_ms": f"{reading.latency_ms:.1f}", "overridden": str(reading.overridden),
                                        "dropped_frames": str(self.runner.dropped)}

    def close(self) -> None:
        self.runner.close()


def main() -> None:
    main_for(RewardNode)


if __name__ == "__main__":
    main()
