"""PickCubeEnv: lift a cube with a simulated Franka FR3, 10 Hz policy over a 500 Hz OSC.

Action, Box(-1, 1, (4,)):
  a[0:3]  end-effector position delta; the target is ee + a * max_step_m, clipped to workspace_box_m.
  a[3]    gripper, binary: > 0 closes (squeezes with a bounded force), <= 0 opens.
Observation ("state"): ee_pos (3), ee_vel (3), gripper_width (1), cube_pos (3), cube_pos - ee_pos (3).
Observation ("pixels"): {"state": the first 7 of the above, "<camera>": uint8 (H, W, 3) per camera}.
  `obs_layout` names the flat state vector (in pixels mode, the "state" entry); `action_layout` the action.
Reward: 1.0 on the step the held cube is >= 5 cm above its resting height; that step terminates.
The env truncates itself after `max_episode_steps`, never on a terminating step. Pass the length
as an env kwarg: `gym.make(id, max_episode_steps=n)` would add gymnasium's TimeLimit instead,
which can report terminated and truncated together.
"""

from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from .cameras import CameraRenderer
from .controller import HAND_DOWN_QUAT, OperationalSpaceController
from .ik import ArmIK
from .scene import (
    ARM_JOINTS,
    CAMERA_GEOM_GROUPS,
    CUBE_HALF_SIZE_M,
    GRIPPER_OPEN_M,
    PHYSICS_DT_S,
    RENDER_GEOM_GROUPS,
    build_model,
)

CUBE_CENTER_XY_M = (0.5, 0.0)
EE_START_M = (0.5, 0.0, 0.2)
# Franka's usual ready pose: a seed for IK that keeps the elbow up.
READY_Q = (0.0, 0.0, 0.0, -1.57, 0.0, 1.57, 0.785)
# Lowest target keeps the fingertips (8.5 mm below the ee site) just above the table.
DEFAULT_WORKSPACE_BOX_M = ((0.3, -0.25, 0.012), (0.7, 0.25, 0.35))
LIFT_SUCCESS_M = 0.05
# A cube farther than this from the ee site is not in the hand (a grasped cube sits within ~1 cm).
HELD_DISTANCE_M = 0.03
STATE_LAYOUT = [("ee_pos", 3), ("ee_vel", 3), ("gripper_width", 1), ("cube_pos", 3), ("cube_rel_ee", 3)]
PROPRIO_LAYOUT = STATE_LAYOUT[:3]
ACTION_LAYOUT = [("ee_delta_xyz", 3), ("gripper", 1)]


class PickCubeEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        obs_mode: str = "state",
        image_size: int = 128,
        cameras=("front", "wrist"),
        max_episode_steps: int = 50,
        control_hz: float = 10.0,
        cube_xy_range_m: float = 0.08,
        render_mode: str | None = None,
        max_step_m: float = 0.03,
        workspace_box_m=DEFAULT_WORKSPACE_BOX_M,
        ee_start_range_m: float = 0.03,
        actuator_lag_s: float = 0.0,  # first-order lag of the arm motors (0: torques apply at once)
    ):
        if obs_mode not in ("state", "pixels"):
            raise ValueError(f"obs_mode must be 'state' or 'pixels', not {obs_mode!r}.")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', not {render_mode!r}.")
        substeps = 1.0 / (control_hz * PHYSICS_DT_S)
        if control_hz <= 0 or abs(substeps - round(substeps)) > 1e-6:
            raise ValueError(f"control_hz must divide the {1 / PHYSICS_DT_S:g} Hz physics rate, not {control_hz}.")
        self.obs_mode, self.render_mode = obs_mode, render_mode
        self.image_size, self.cameras = int(image_size), tuple(cameras)
        self.max_episode_steps = int(max_episode_steps)
        self.cube_xy_range_m, self.max_step_m = cube_xy_range_m, max_step_m
        self.ee_start_range_m = ee_start_range_m
        self.workspace_low_m, self.workspace_high_m = (np.array(b, dtype=float) for b in workspace_box_m)
        self.physics_dt_s, self.control_hz = PHYSICS_DT_S, float(control_hz)
        self.n_substeps = int(round(substeps))
        self.control_period_s = self.n_substeps * PHYSICS_DT_S
        self.obs_layout = list(STATE_LAYOUT if obs_mode == "state" else PROPRIO_LAYOUT)
        self.action_layout = list(ACTION_LAYOUT)
        self.lift_success_m = LIFT_SUCCESS_M

        self.model = build_model(self.image_size, actuator_lag_s)
        self.data = mujoco.MjData(self.model)
        self._ik = ArmIK(self.model, "ee", ARM_JOINTS)
        self._ready_q = self._ik.solve(np.array(EE_START_M), HAND_DOWN_QUAT, READY_Q)
        self._controller = OperationalSpaceController(self.model, self.data, "ee", ARM_JOINTS, self._ready_q)
        self._cache_addresses()

        self.action_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
        state_space = spaces.Box(-np.inf, np.inf, (sum(n for _, n in self.obs_layout),), np.float32)
        if obs_mode == "state":
            self.observation_space = state_space
        else:
            image_space = spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8)
            images = {camera: image_space for camera in self.cameras}
            self.observation_space = spaces.Dict({"state": state_space, **images})
        self._camera_renderer = None
        if obs_mode == "pixels":
            self._camera_renderer = CameraRenderer(self.model, self.cameras, self.image_size, CAMERA_GEOM_GROUPS)
        self._render_renderer = None
        self._state = np.zeros(sum(n for _, n in STATE_LAYOUT), np.float32)
        self._ee_vel = np.zeros(3)
        self.elapsed_steps = 0
        self.gripper_closed = False
        self.cube_rest_z_m = CUBE_HALF_SIZE_M

    def _cache_addresses(self) -> None:
        model, data = self.model, self.data
        first_arm_qpos = model.jnt_qposadr[model.joint(ARM_JOINTS[0]).id]
        self._arm_qpos = slice(first_arm_qpos, first_arm_qpos + len(ARM_JOINTS))
        self._finger_qpos = [model.jnt_qposadr[model.joint(f).id] for f in ("finger_joint1", "finger_joint2")]
        cube_adr = model.jnt_qposadr[model.joint("cube_joint").id]
        self._cube_qpos = data.qpos[cube_adr : cube_adr + 7]
        self._gripper_ctrl = model.actuator("gripper").id
        self._ee_pos = data.site_xpos[model.site("ee").id]
        self._cube_pos = data.xpos[model.body("cube").id]

    # The true state, read by the scripted expert and by tests.
    @property
    def ee_pos_m(self) -> np.ndarray:
        return self._ee_pos.copy()

    @property
    def cube_pos_m(self) -> np.ndarray:
        return self._cube_pos.copy()

    @property
    def gripper_width_m(self) -> float:
        return float(self.data.qpos[self._finger_qpos[0]] + self.data.qpos[self._finger_qpos[1]])

    @property
    def ee_target_m(self) -> np.ndarray:
        return self._controller.target_pos_m.copy()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        rng, model, data = self.np_random, self.model, self.data
        mujoco.mj_resetData(model, data)
        ee_start = np.array(EE_START_M) + rng.uniform(-self.ee_start_range_m, self.ee_start_range_m, 3)
        data.qpos[self._arm_qpos] = self._ik.solve(ee_start, HAND_DOWN_QUAT, self._ready_q)
        data.qpos[self._finger_qpos] = GRIPPER_OPEN_M
        data.ctrl[self._gripper_ctrl] = GRIPPER_OPEN_M
        cube_xy = np.array(CUBE_CENTER_XY_M) + rng.uniform(-self.cube_xy_range_m, self.cube_xy_range_m, 2)
        yaw = rng.uniform(-math.pi, math.pi)
        self._cube_qpos[:3] = (*cube_xy, CUBE_HALF_SIZE_M)
        self._cube_qpos[3:] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
        mujoco.mj_forward(model, data)
        self._controller.target_pos_m[:] = self._ee_pos
        self.cube_rest_z_m = float(self._cube_pos[2])
        self.elapsed_steps = 0
        self.gripper_closed = False
        self._delayed_action = None
        return self._observation(), {"is_success": False}

    def step(self, action):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (4,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be 4 finite numbers in [-1, 1], got {action!r}.")
        action = np.clip(action, -1.0, 1.0)
        delayed, self._delayed_action = self._delayed_action, None
        switch_substep = 0 if delayed is None else int(round(delayed[1] * self.n_substeps))
        self._apply_action(action if delayed is None else delayed[0])

        model, data, controller = self.model, self.data, self._controller
        # mj_step1 ends each substep so kinematics are current for the controller and the observation.
        for substep in range(self.n_substeps):
            if delayed is not None and substep == switch_substep:
                self._apply_action(action)  # the delayed action arrives part-way through the period
            controller.apply()
            mujoco.mj_step2(model, data)
            mujoco.mj_step1(model, data)

        self.elapsed_steps += 1
        success = self._cube_lifted()
        truncated = not success and self.elapsed_steps >= self.max_episode_steps
        return self._observation(), float(success), success, truncated, {"is_success": success}

    _delayed_action = None  # (previous action, fraction of the next period it still runs), set by a delay wrapper

    def set_delayed_action(self, previous_action, fraction: float) -> None:
        """During the next step only, run ``previous_action`` for the first ``fraction`` of the period (sim2real.latency)."""
        previous = np.clip(np.asarray(previous_action, dtype=np.float64), -1.0, 1.0)
        if previous.shape != (4,) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"set_delayed_action needs a 4-number action and a fraction in [0, 1], got {previous_action!r}, {fraction}.")
        self._delayed_action = (previous, float(fraction))

    def _apply_action(self, action: np.ndarray) -> None:
        target = self._controller.target_pos_m
        target[:] = self._ee_pos + action[:3] * self.max_step_m
        np.clip(target, self.workspace_low_m, self.workspace_high_m, out=target)
        self.gripper_closed = bool(action[3] > 0.0)
        self.data.ctrl[self._gripper_ctrl] = 0.0 if self.gripper_closed else GRIPPER_OPEN_M

    def _cube_lifted(self) -> bool:
        lifted = self._cube_pos[2] - self.cube_rest_z_m >= LIFT_SUCCESS_M
        held = np.linalg.norm(self._cube_pos - self._ee_pos) < HELD_DISTANCE_M
        return bool(lifted and held)

    def _observation(self):
        state = self._state
        state[0:3] = self._ee_pos
        state[3:6] = self._controller.ee_velocity(self._ee_vel)
        state[6] = self.gripper_width_m
        state[7:10] = self._cube_pos
        state[10:13] = self._cube_pos - self._ee_pos
        if self.obs_mode == "state":
            return state.copy()
        images = {c: self._camera_renderer.render(self.data, c).copy() for c in self.cameras}
        return {"state": state[:7].copy(), **images}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._render_renderer is None:
            size = max(self.image_size, 256)
            self._render_renderer = CameraRenderer(self.model, ("front",), size, RENDER_GEOM_GROUPS)
        return self._render_renderer.render(self.data, "front").copy()

    def close(self) -> None:
        for renderer in (self._camera_renderer, self._render_renderer):
            if renderer is not None:
                renderer.close()
        self._camera_renderer = self._render_renderer = None
