"""Shared scenes for the calibration tests: a known camera, a printed board, hand-eye views with
known mounts, a MuJoCo hand-eye rig, and a gripper path recorded on two clocks.

A plain module (not conftest) so that test files import it by a name no other test area uses.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibration.board import BoardDetection, Checkerboard, estimate_board_pose
from calibration.camera_info import CameraInfo
from calibration.capture import eye_in_hand_poses, eye_to_hand_poses, sphere_cap_views
from calibration.poses import invert_pose, look_at, make_pose, quaternion_xyzw, rotation_about
from calibration.synthetic import board_in_view, project_points

cv2.setNumThreads(1)  # two shared cores: OpenCV's thread pool only adds contention here

# A 640x480 camera with the barrel distortion of a typical webcam / RealSense colour lens.
TRUE_CAMERA = CameraInfo(
    camera_matrix=np.array([[600.0, 0.0, 322.0], [0.0, 598.0, 238.0], [0.0, 0.0, 1.0]]),
    dist_coeffs=np.array([-0.12, 0.08, 0.0005, -0.0003, 0.0]),
    image_size=(640, 480),
)
BOARD = Checkerboard((9, 6), 0.025)
BOARD_CENTER_M = np.array([4 * 0.025, 2.5 * 0.025, 0.0])  # centre of the inner corners, board frame

# OpenCV camera axes (x right, y down, z forward) in MuJoCo camera axes (x right, y up, looks along -z).
_MUJOCO_FROM_OPENCV = np.diag([1.0, -1.0, -1.0])


class MujocoHandEyeRig:
    """A mocap gripper and a camera over a printed board, rendered by MuJoCo.

    Eye-in-hand: the camera rides on the gripper, the board lies on the table.
    Eye-to-hand: the camera hangs over the table, the gripper holds the board.
    The arm and camera it exposes satisfy ``calibration.capture``'s protocols.
    """

    def __init__(self, mode: str, mount: np.ndarray, width: int = 640, height: int = 480, fovy_deg: float = 45.0):
        import mujoco

        self._mujoco = mujoco
        texture = BOARD.texture(pixels_per_square=64)
        tex_h, tex_w = texture.image.shape
        half_x, half_y = tex_w / texture.pixels_per_m / 2, tex_h / texture.pixels_per_m / 2
        _, png = cv2.imencode(".png", cv2.cvtColor(texture.image, cv2.COLOR_GRAY2BGR))
        camera_quat = quaternion_xyzw(mount[:3, :3] @ _MUJOCO_FROM_OPENCV)[[3, 0, 1, 2]]  # MuJoCo: w first
        camera = (f'<camera name="cam" fovy="{fovy_deg}" pos="{" ".join(map(str, mount[:3, 3]))}" '
                  f'quat="{" ".join(map(str, camera_quat))}"/>')
        # The plane's visible side (+z) faces the camera; the board frame's z points the other way.
        board_on_table = f'<geom type="plane" size="{half_x} {half_y} 0.01" material="board" pos="0.5 0 0"/>'
        board_in_hand = f'<geom type="plane" size="{half_x} {half_y} 0.01" material="board" pos="0 0 0.05"/>'
        plane_center = np.array([0.5, 0.0, 0.0]) if mode == "eye-in-hand" else np.array([0.0, 0.0, 0.05])
        flip = rotation_about([1.0, 0.0, 0.0], np.pi)
        # Roughly where the board frame is (table frame for eye-in-hand, gripper frame for eye-to-hand),
        # as a person would measure it: enough to aim the guided capture.
        self.board_guess = make_pose(flip, plane_center - flip @ BOARD_CENTER_M)
        in_hand = mode == "eye-in-hand"
        xml = f"""
        <mujoco>
          <visual><global offwidth="{width}" offheight="{height}"/><quality offsamples="8"/>
            <headlight ambient=".7 .7 .7" diffuse=".3 .3 .3" specular="0 0 0"/></visual>
          <asset><texture name="board" type="2d" file="board.png"/>
            <material name="board" texture="board" texrepeat="1 1" specular="0" shininess="0" reflectance="0"/>
          </asset>
          <worldbody>
            <geom type="plane" size="3 3 0.1" rgba=".45 .45 .45 1" pos="0 0 -0.3"/>
            {board_on_table if in_hand else camera}
            <body name="gripper" mocap="true" pos="0.5 0 0.5">{camera if in_hand else board_in_hand}</body>
          </worldbody>
        </mujoco>"""
        self.model = mujoco.MjModel.from_xml_string(xml, {"board.png": png.tobytes()})
        self.data = mujoco.MjData(self.model)
        mujoco.mj_forward(self.model, self.data)
        self._renderer = mujoco.Renderer(self.model, height, width)
        self._gripper = self.model.body("gripper").id
        fy = (height / 2) / np.tan(np.radians(fovy_deg) / 2)
        # Pixel centres at integers (OpenCV): the optical axis meets the image at ((w-1)/2, (h-1)/2).
        self.camera_info = CameraInfo(np.array([[fy, 0, (width - 1) / 2], [0, fy, (height - 1) / 2], [0, 0, 1]]),
                                      np.zeros(5), (width, height))

    # PosableArm
    def move_to_pose(self, base_T_gripper: np.ndarray) -> None:
        self.data.mocap_pos[0] = base_T_gripper[:3, 3]
        self.data.mocap_quat[0] = quaternion_xyzw(base_T_gripper[:3, :3])[[3, 0, 1, 2]]
        self._mujoco.mj_forward(self.model, self.data)
        self.data.time += 1.0  # one second per move, so stamps differ

    def current_pose(self) -> np.ndarray:
        return make_pose(self.data.xmat[self._gripper].reshape(3, 3), self.data.xpos[self._gripper])

    # TimestampedCamera
    def read(self) -> tuple[np.ndarray, float]:
        self._renderer.update_scene(self.data, camera="cam")
        return cv2.cvtColor(self._renderer.render(), cv2.COLOR_RGB2BGR), float(self.data.time)

    def close(self) -> None:
        self._renderer.close()


def tilted_mount(axis, angle_deg: float, translation_m) -> np.ndarray:
    return make_pose(rotation_about(np.asarray(axis, float), np.radians(angle_deg)), translation_m)


def intrinsics_views(n_views: int, seed: int) -> list[np.ndarray]:
    """``camera_T_board`` poses that keep the whole board in TRUE_CAMERA's image, spread over it."""
    board_T_cameras = sphere_cap_views(BOARD_CENTER_M, n_views=3 * n_views, distance_m=(0.3, 0.5),
                                       max_tilt_deg=45.0, aim_jitter_m=0.08, seed=seed)
    in_view = [invert_pose(p) for p in board_T_cameras
               if board_in_view(BOARD.object_points(), TRUE_CAMERA, invert_pose(p), margin_px=15.0)]
    assert len(in_view) >= n_views, "the view generator no longer keeps the board in the image"
    return in_view[:n_views]


def wobble(image: np.ndarray, amplitude_px: float = 2.5, period_px: float = 40.0) -> np.ndarray:
    """Rows shifted sideways by a sine, as a vibrating rolling-shutter camera records them."""
    height, width = image.shape[:2]
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    shifted = columns + amplitude_px * np.sin(2 * np.pi * rows / period_px)
    return cv2.remap(image, shifted.astype(np.float32), rows, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def gripper_path_m(t_s: np.ndarray, seed: int) -> np.ndarray:
    """A smooth, non-periodic 3-D path: four random sines per axis, 0.1-1.2 Hz, up to 8 cm each."""
    rng = np.random.default_rng(seed)
    amplitude, frequency = rng.uniform(0.02, 0.08, (3, 4)), rng.uniform(0.1, 1.2, (3, 4))
    phase = rng.uniform(0.0, 6.3, (3, 4))
    return np.stack([np.sum(a[:, None] * np.sin(2 * np.pi * f[:, None] * t_s + p[:, None]), axis=0)
                     for a, f, p in zip(amplitude, frequency, phase)], axis=1)


def recordings(offset_s: float, seed: int, camera_hz: float = 30.0, robot_hz: float = 250.0,
               camera_noise_m: float = 0.001, drop_fraction: float = 0.1):
    """Robot: its own stamps, 0.1 mm noise. Camera: jittered frames, dropped frames, mm noise, in its own frame."""
    rng = np.random.default_rng(seed + 100)
    robot_t_s = np.arange(0.0, 20.0, 1.0 / robot_hz) + rng.normal(0.0, 2e-4, int(20.0 * robot_hz))
    robot_positions = gripper_path_m(robot_t_s, seed) + rng.normal(0.0, 1e-4, (len(robot_t_s), 3))
    capture_t_s = np.arange(0.5, 19.5, 1.0 / camera_hz)
    capture_t_s = capture_t_s + rng.normal(0.0, 1e-3, len(capture_t_s))  # exposure-time jitter
    capture_t_s = capture_t_s[rng.random(len(capture_t_s)) >= drop_fraction]  # frames without a detection
    rotation = rotation_about([1.0, 2.0, 3.0], 1.0)  # the camera sees the board in its own frame
    camera_positions = gripper_path_m(capture_t_s, seed) @ rotation.T + [0.1, 0.2, 0.5]
    camera_positions += rng.normal(0.0, camera_noise_m, camera_positions.shape)
    return capture_t_s + offset_s, camera_positions, robot_t_s, robot_positions


GRIPPER_T_CAMERA = tilted_mount([0.3, -0.2, 1.0], 80.0, [0.05, -0.03, 0.08])
BASE_T_BOARD = tilted_mount([1.0, 0.0, 0.0], 180.0, [0.5, 0.1, 0.02])
BASE_T_CAMERA = look_at(np.array([0.9, 0.2, 0.9]), np.array([0.5, 0.0, 0.4]), np.array([0.0, 0.0, 1.0]))
GRIPPER_T_BOARD = tilted_mount([0.0, 1.0, 0.0], 10.0, [-0.1, -0.06, 0.05])


def hand_eye_views(mode: str, noise_px: float, seed: int):
    """Robot poses from the guided-capture generator, and board poses solved from projected corners."""
    rng = np.random.default_rng(seed)
    views = sphere_cap_views(BOARD_CENTER_M, n_views=20, max_tilt_deg=35.0, seed=seed)
    # The capture is planned with a mount guess off by 1 cm and 3 degrees, as a tape measure gives.
    guess_error = tilted_mount([1.0, 1.0, 0.0], 3.0, [0.01, 0.0, 0.0])
    if mode == "eye-in-hand":
        base_T_grippers = eye_in_hand_poses(BASE_T_BOARD, GRIPPER_T_CAMERA @ guess_error, views)
        camera_T_boards = [invert_pose(p @ GRIPPER_T_CAMERA) @ BASE_T_BOARD for p in base_T_grippers]
    else:
        base_T_grippers = eye_to_hand_poses(BASE_T_CAMERA, GRIPPER_T_BOARD @ guess_error, views)
        camera_T_boards = [invert_pose(BASE_T_CAMERA) @ p @ GRIPPER_T_BOARD for p in base_T_grippers]
    solved, detections = [], []
    for camera_T_board in camera_T_boards:
        assert board_in_view(BOARD.object_points(), TRUE_CAMERA, camera_T_board)
        pixels = project_points(BOARD.object_points(), TRUE_CAMERA, camera_T_board)
        pixels += rng.normal(0.0, noise_px, pixels.shape)
        detections.append(BoardDetection(BOARD.object_points(), pixels.astype(np.float32)))
        solved.append(estimate_board_pose(detections[-1], TRUE_CAMERA.camera_matrix, TRUE_CAMERA.dist_coeffs)[0])
    return base_T_grippers, solved, detections


def hand_eye_truth(mode: str) -> np.ndarray:
    """The mount hand-eye must find: gripper_T_camera or base_T_camera."""
    return GRIPPER_T_CAMERA if mode == "eye-in-hand" else BASE_T_CAMERA
