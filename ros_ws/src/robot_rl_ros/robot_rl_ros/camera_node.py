"""camera_node: a `drivers.cameras` backend as sensor_msgs/Image + CameraInfo (+ aligned depth).

Publishes `image_raw` (rgb8), `camera_info`, and `depth/image_raw` (32FC1, metres, aligned to color)
when the backend has depth, all with the sensor-data QoS and stamped with the frame's own timestamp.
The sim backend renders franky-sim's FR3 scene and, with `mirror_joint_states`, poses the arm from
the arm node's `joint_states`, so the picture follows the simulated arm in another process.
"""

from __future__ import annotations

import threading

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState

from drivers.cameras.base import Camera, Frame, Intrinsics
from robot_rl_ros.health import NodeHealth
from robot_rl_ros.ros_io import SENSOR_QOS, STATE_QOS, Diagnostics, declare, header, main_for
from robot_rl_ros.stamps import monotonic_to_wall_ns

DISTORTION_MODELS = {"brown_conrady": "plumb_bob", "plumb_bob": "plumb_bob", "none": "plumb_bob"}


def make_camera(backend: str, device: str, width: int, height: int, fps: float, depth: bool) -> Camera:
    """The driver for `backend`; the sim camera is returned with its model/data for joint mirroring."""
    if backend == "sim":
        import mujoco

        from drivers.arms.mujoco_arm import HOME_Q_RAD, fr3_model
        from drivers.cameras.sim import SimCamera

        model = fr3_model(None)
        data = mujoco.MjData(model)
        data.qpos[:7] = HOME_Q_RAD
        mujoco.mj_forward(model, data)
        return SimCamera(model, data, int(device) if device.lstrip("-").isdigit() else device, width=width, height=height, fps=fps, depth=depth)
    if backend == "opencv":
        from drivers.cameras.opencv import OpenCVCamera

        return OpenCVCamera(int(device) if device.isdigit() else device, width=width, height=height, fps=fps, loop=True)
    if backend == "realsense":
        from drivers.cameras.realsense import RealSenseCamera

        return RealSenseCamera(device or None, width=width, height=height, fps=int(fps), depth=depth)
    raise ValueError(f"camera backend '{backend}' is unknown; set the parameter backend to sim, opencv or realsense.")


def camera_info(intrinsics: Intrinsics, msg_header) -> CameraInfo:
    k = intrinsics
    d = list(k.distortion)[:5] + [0.0] * max(0, 5 - len(k.distortion))
    return CameraInfo(
        header=msg_header, width=k.width, height=k.height, distortion_model=DISTORTION_MODELS.get(k.distortion_model, "plumb_bob"),
        d=d, k=[k.fx, 0.0, k.cx, 0.0, k.fy, k.cy, 0.0, 0.0, 1.0], r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
        p=[k.fx, 0.0, k.cx, 0.0, 0.0, k.fy, k.cy, 0.0, 0.0, 0.0, 1.0, 0.0],
    )


def image_msg(array: np.ndarray, encoding: str, msg_header) -> Image:
    height, width = array.shape[:2]
    data = np.ascontiguousarray(array)
    return Image(header=msg_header, height=height, width=width, encoding=encoding, is_bigendian=0,
                 step=data.strides[0], data=data.tobytes())


class CameraNode(Node):
    def __init__(self):
        super().__init__("camera")
        backend = declare(self, "backend", "sim", "camera driver: sim, opencv or realsense")
        device = declare(self, "device", "-1", "opencv index/path, realsense serial ('' = any), sim camera name or -1 (free view)")
        width = declare(self, "width", 128, "image width, px")
        height = declare(self, "height", 128, "image height, px")
        fps = declare(self, "fps", 15.0, "frame rate, Hz")
        depth = declare(self, "depth", False, "also publish aligned depth (sim, realsense)")
        self.frame_id = declare(self, "frame_id", "camera_color_optical_frame", "frame of the images")
        mirror = declare(self, "mirror_joint_states", True, "sim only: pose the rendered arm from the arm node's joint states")
        joints_topic = declare(self, "joint_states_topic", "/joint_states", "sim only: where the arm node publishes its joint states")
        self.health = NodeHealth()
        self.camera = make_camera(backend, device, width, height, fps, depth)
        self.image_pub = self.create_publisher(Image, "image_raw", SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, "camera_info", SENSOR_QOS)
        self.depth_pub = self.create_publisher(Image, "depth/image_raw", SENSOR_QOS) if depth else None
        if backend == "sim" and mirror:
            self.create_subscription(JointState, joints_topic, self._mirror, STATE_QOS)
        self.diagnostics = Diagnostics(self, self.health, extra=self._camera_counters)
        self.camera.connect()
        self._stop = threading.Event()
        # the driver's read() blocks for the next frame: publish from a thread, not a polling timer
        self._thread = threading.Thread(target=self._publish_frames, name="camera-publish", daemon=True)
        self._thread.start()

    def _mirror(self, msg: JointState) -> None:
        positions = np.asarray(msg.position, dtype=float)
        if positions.shape[0] < 7 or not np.all(np.isfinite(positions[:7])):
            self.health.reject("joint_states")
            return
        import mujoco

        camera = self.camera
        with camera.lock:
            camera.data.qpos[:7] = positions[:7]
            mujoco.mj_forward(camera.model, camera.data)

    def _publish_frames(self) -> None:
        seq = None
        while not self._stop.is_set():
            try:
                frame: Frame = self.camera.read(timeout_s=1.0, newer_than=seq)
            except Exception as exc:  # a lost device: say so on diagnostics, keep waiting for it
                self.health.set_status(2, str(exc))
                continue
            seq = frame.seq
            msg_header = header(monotonic_to_wall_ns(frame.stamp_ns), self.frame_id)
            self.image_pub.publish(image_msg(frame.color, "rgb8", msg_header))
            self.info_pub.publish(camera_info(frame.intrinsics, msg_header))
            if self.depth_pub is not None and frame.depth_m is not None:
                self.depth_pub.publish(image_msg(frame.depth_m.astype(np.float32), "32FC1", msg_header))
            self.health.rate("image").tick()
            self.health.set_status(0, "streaming")

    def _camera_counters(self) -> None:
        cam = self.camera
        self.health.extra.update(frames_captured=cam.frames_captured, frames_dropped=cam.frames_dropped, device_errors=cam.errors, reconnects=cam.reconnects)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.camera.close()


def main() -> None:
    main_for(CameraNode)


if __name__ == "__main__":
    main()
