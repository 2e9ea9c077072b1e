"""reward_node in its own process: a reward classifier checkpoint scoring images that arrive over ROS.

The classifier here has seeded random weights (its accuracy is tested in tests/robot_rl); what this
checks is the node: every published probability equals the checkpoint's own output for the image
sent, success follows the checkpoint's threshold, wrong-size images are refused and counted, and a
human override wins until cleared.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ros_harness import NodeProcess, Probe, diagnostic_values, isolate_domain, require_rclpy

require_rclpy()
isolate_domain()

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Bool, Float64, Int8  # noqa: E402

from robot_rl.reward.classifier import SuccessClassifier, load_classifier, save_classifier  # noqa: E402
from robot_rl_ros.ros_io import COMMAND_QOS, SENSOR_QOS, STATE_QOS, header  # noqa: E402

SIZE = 64
torch.set_num_threads(1)


def _image_msg(array: np.ndarray) -> Image:
    height, width, _ = array.shape
    return Image(header=header(0, "front"), height=height, width=width, encoding="rgb8", is_bigendian=0,
                 step=width * 3, data=array.tobytes())


def _expected_probability(checkpoint, image) -> float:
    model, _ = load_classifier(checkpoint, image_size=SIZE, cameras=["front"])
    with torch.no_grad():
        return float(torch.sigmoid(model(torch.as_tensor(image[None])))[0])


def test_reward_node_scores_images_refuses_bad_ones_and_obeys_the_human(tmp_path):
    torch.manual_seed(0)
    checkpoint = save_classifier(tmp_path / "classifier_v1.pt", SuccessClassifier(["front"], SIZE), threshold=0.5,
                                 metrics={})
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(2)]
    expected = [_expected_probability(checkpoint, image) for image in images]
    assert abs(expected[0] - expected[1]) > 1e-4  # the two images are told apart

    rclpy.init()
    probe = Probe("reward_probe")
    image_pub = probe.node.create_publisher(Image, "/front/image_raw", SENSOR_QOS)
    override_pub = probe.node.create_publisher(Int8, "/reward/override", COMMAND_QOS)
    probabilities = probe.listen(Float64, "/reward/probability", STATE_QOS)
    successes = probe.listen(Bool, "/success", STATE_QOS)
    rewards = probe.listen(Float64, "/reward", STATE_QOS)
    diagnostics = probe.listen(DiagnosticArray, "/diagnostics", QoSProfile(depth=50))
    node = NodeProcess("reward_node", {"checkpoint": str(checkpoint), "image_size": SIZE, "cameras": ["front"],
                                       "rate_hz": 20.0}, tmp_path)
    try:
        for image, probability in zip(images, expected):
            def scored(image=image, probability=probability):
                image_pub.publish(_image_msg(image))
                return bool(probabilities) and probabilities[-1].data == pytest.approx(probability, abs=1e-5)

            assert probe.spin_until(scored, 30.0, [node]), node.log()
            probe.spin_for(0.2)
            assert successes[-1].data == (probability >= 0.5)
            assert rewards[-1].data == (1.0 if probability >= 0.5 else 0.0)

        forced = not successes[-1].data
        override_pub.publish(Int8(data=1 if forced else 0))
        assert probe.spin_until(lambda: successes[-1].data == forced, 5.0, [node])
        override_pub.publish(Int8(data=-1))
        assert probe.spin_until(lambda: successes[-1].data == (expected[-1] >= 0.5), 5.0, [node])

        def refused() -> bool:
            image_pub.publish(_image_msg(np.zeros((SIZE + 1, SIZE, 3), np.uint8)))
            status = diagnostic_values(diagnostics, "reward")
            return status is not None and int(status[2].get("rejected.size", "0")) > 0

        assert probe.spin_until(refused, 10.0, [node]), node.log()
    finally:
        assert node.stop() == 0, node.log()
        probe.close()
        rclpy.shutdown()
