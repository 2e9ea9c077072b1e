"""A simulated FR3 in MuJoCo, stepped in real time on its own thread: the protocol-free twin of `FrankyArm`.

The model is franky-sim's FR3 MJCF (same kinematics and TCP as the franky-sim server, so poses
agree). Control mirrors a Franka behind franky: every pose command moves a Cartesian setpoint
towards the target over one command interval (a streaming interpolator, capped at
`setpoint_speed_m_s`); damped least-squares IK turns it into joint targets for the MJCF's joint
position servos (with gravity compensation); the hand is a force-limited PD.
Velocity commands expire after `velocity_command_ttl_ms`, like franky's velocity motions.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import numpy as np

from drivers.arms.base import Arm, ArmMode, ArmState, Gripper, now_ns
from drivers.arms.contact_wrench import external_wrench, robot_body_ids
from drivers.arms.rotations import slerp_limited, wxyz_to_xyzw, xyzw_to_wxyz
from drivers.errors import DeviceError, require

# franky-sim's start configuration and TCP offset (flange -> fingertip centre, m)
HOME_Q_RAD = np.array([0.0, 0.0, 0.0, -1.57, 0.0, 1.57, 0.785])
TCP_OFFSET_M = 0.1034
HAND_MAX_WIDTH_M = 0.08
HAND_SPEED_M_S = 0.05  # Franka Hand speed limit
_HAND_KP, _HAND_KV = 1000.0, 50.0  # per-finger PD, as franky-sim's hand


@functools.lru_cache(maxsize=4)
def fr3_model(table_top_z_m: float | None = None):
    """Compile franky-sim's FR3 MJCF with a floor, a `tcp` site and an optional table in front of the arm."""
    mujoco = require("mujoco", "pip install mujoco")
    franky_sim = require("franky_sim", "pip install franky-sim")
    assets = Path(franky_sim.__file__).parent / "assets"
    spec = mujoco.MjSpec.from_file(str(assets / "fr3.xml"))
    spec.meshdir = str(assets / "meshes")
    spec.worldbody.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2.0, 2.0, 0.1])
    spec.worldbody.add_light(name="top_light", pos=[0.5, 0.0, 2.0], dir=[0.0, 0.0, -1.0])
    if table_top_z_m is not None:
        half_m = table_top_z_m / 2
        spec.worldbody.add_geom(
            name="table", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.25, 0.4, half_m], pos=[0.55, 0.0, half_m], rgba=[0.6, 0.5, 0.4, 1]
        )
    spec.body("hand").add_site(name="tcp", pos=[0.0, 0.0, TCP_OFFSET_M])
    return spec.compile()


class MujocoGripper(Gripper):
    def __init__(self, arm: "MujocoArm"):
        self._arm = arm

    def _go(self, width_m: float, force_n: float) -> float:
        with self._arm.lock:
            self._arm._hand_goal_m = float(np.clip(width_m, 0.0, HAND_MAX_WIDTH_M))
            self._arm._hand_force_n = float(force_n)
        return self._arm._wait_hand_settled()

    def open(self) -> bool:
        return self._go(HAND_MAX_WIDTH_M, 70.0) > HAND_MAX_WIDTH_M - 0.005

    def close(self) -> bool:
        return self._go(0.0, 70.0) < 0.005

    def grasp(self, width_m: float, force_n: float, tolerance_m: float = 0.01) -> bool:
        # like the real hand: close until blocked, then judge the width reached
        final_m = self._go(0.0, force_n)
        return abs(final_m - width_m) <= tolerance_m

    def width_m(self) -> float:
        return self._arm.state().gripper_width_m


class MujocoArm(Arm):
    def __init__(
        self,
        *,
        table_top_z_m: float | None = None,
        setpoint_speed_m_s: float = 0.5,
        setpoint_angular_speed_rad_s: float = 1.5,
        velocity_command_ttl_ms: float = 200.0,
        realtime_factor: float = 1.0,
    ):
        self.table_top_z_m = table_top_z_m
        self.setpoint_speed_m_s = setpoint_speed_m_s
        self.setpoint_angular_speed_rad_s = setpoint_angular_speed_rad_s
        self.velocity_command_ttl_ms = velocity_command_ttl_ms
        self.realtime_factor = realtime_factor
        self.gripper = MujocoGripper(self)
        self.overruns = 0  # times the physics fell >50 ms behind the wall clock and skipped ahead
        self.lock = threading.RLock()  # guards model/data: the physics thread, commands, cameras
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.model = None
        self.data = None

    # ---- lifecycle --------------------------------------------------------------------------
    def connect(self) -> None:
        if self._thread is not None:
            return
        mujoco = require("mujoco", "pip install mujoco")
        self._mj = mujoco
        model = fr3_model(self.table_top_z_m)
        data = mujoco.MjData(model)
        kin = mujoco.MjData(model)  # scratch data for IK at the joint target, not the measured state
        name = lambda kind, n: mujoco.mj_name2id(model, kind, n)  # noqa: E731
        joints = [name(mujoco.mjtObj.mjOBJ_JOINT, f"fr3_joint{i}") for i in range(1, 8)]
        fingers = [name(mujoco.mjtObj.mjOBJ_JOINT, f"finger_joint{i}") for i in (1, 2)]
        self._qadr = model.jnt_qposadr[joints]
        self._vadr = model.jnt_dofadr[joints]
        self._finger_qadr = model.jnt_qposadr[fingers]
        self._finger_vadr = model.jnt_dofadr[fingers]
        self._arm_act = np.array([name(mujoco.mjtObj.mjOBJ_ACTUATOR, f"fr3_joint{i}") for i in range(1, 8)])
        hand_act = name(mujoco.mjtObj.mjOBJ_ACTUATOR, "hand")
        model.actuator_gainprm[hand_act, :] = 0.0  # the hand is driven by our force-limited PD below
        model.actuator_biasprm[hand_act, :] = 0.0
        self._tcp = name(mujoco.mjtObj.mjOBJ_SITE, "tcp")
        self._q_low, self._q_high = model.jnt_range[joints, 0], model.jnt_range[joints, 1]
        self._body_ids = robot_body_ids(model, "base")
        data.qpos[self._qadr] = HOME_Q_RAD
        data.qpos[self._finger_qadr] = 0.02
        mujoco.mj_forward(model, data)
        self.model, self.data, self._kin = model, data, kin
        self._q_des = HOME_Q_RAD.copy()
        self._pos_sp, self._quat_sp = self._fk(self._q_des)
        self._pos_goal, self._quat_goal = self._pos_sp.copy(), self._quat_sp.copy()
        self._twist = np.zeros(6)
        self._joint_vel = np.zeros(7)
        self._command_expiry_s = 0.0
        self._last_pose_command_s = -1.0
        self._setpoint_rate_m_s = self.setpoint_speed_m_s
        self._mode = ArmMode.IDLE
        self._hand_goal_m, self._hand_force_n = 0.04, 70.0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mujoco-arm", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is None:
            return
        self.hold()
        self._stop.set()
        self._thread.join()
        self._thread = None

    # ---- physics thread ---------------------------------------------------------------------
    def _run(self) -> None:
        mujoco, model, data = self._mj, self.model, self.data
        dt = model.opt.timestep
        wall0, sim0 = time.monotonic(), data.time
        while not self._stop.is_set():
            behind_s = (time.monotonic() - wall0) * self.realtime_factor - (data.time - sim0)
            if behind_s > 0.05:  # starved of CPU: let simulated time slip rather than burst
                self.overruns += 1
                wall0, sim0 = time.monotonic(), data.time
                behind_s = 0.0
            for _ in range(int(behind_s / dt)):
                with self.lock:
                    self._control(dt)
                    mujoco.mj_step(model, data)
            time.sleep(0.001)

    def _fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mujoco, kin = self._mj, self._kin
        kin.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, kin)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, kin.site_xmat[self._tcp])
        return kin.site_xpos[self._tcp].copy(), wxyz_to_xyzw(quat)

    def _ik_step(self) -> None:
        """One damped least-squares step moving the joint target towards the Cartesian setpoint."""
        mujoco, model, kin = self._mj, self.model, self._kin
        pos, quat = self._fk(self._q_des)
        mujoco.mj_comPos(model, kin)
        jac_p, jac_r = np.zeros((3, model.nv)), np.zeros((3, model.nv))
        mujoco.mj_jacSite(model, kin, jac_p, jac_r, self._tcp)
        jac = np.vstack([jac_p[:, self._vadr], jac_r[:, self._vadr]])
        err_rot = np.zeros(3)
        q_err = np.zeros(4)
        mujoco.mju_mulQuat(q_err, xyzw_to_wxyz(self._quat_sp), _conj(xyzw_to_wxyz(quat)))
        mujoco.mju_quat2Vel(err_rot, q_err, 1.0)
        err = np.concatenate([self._pos_sp - pos, err_rot])
        jjt = jac @ jac.T + 1e-4 * np.eye(6)
        dq = jac.T @ np.linalg.solve(jjt, err)
        null = np.eye(7) - jac.T @ np.linalg.solve(jjt, jac)
        dq += null @ (0.002 * (HOME_Q_RAD - self._q_des))  # keep the elbow near home in the redundant direction
        self._q_des = np.clip(self._q_des + np.clip(dq, -0.01, 0.01), self._q_low, self._q_high)

    def _control(self, dt: float) -> None:
        data = self.data
        if self._mode in (ArmMode.CARTESIAN_VELOCITY, ArmMode.JOINT_VELOCITY) and data.time > self._command_expiry_s:
            self._twist[:] = 0.0
            self._joint_vel[:] = 0.0
        if self._mode is ArmMode.POSE:
            step = self._pos_goal - self._pos_sp
            dist = np.linalg.norm(step)
            max_step = self._setpoint_rate_m_s * dt
            self._pos_sp = self._pos_sp + (step if dist <= max_step else step * (max_step / dist))
            self._quat_sp, _ = slerp_limited(self._quat_sp, self._quat_goal, self.setpoint_angular_speed_rad_s * dt)
            self._ik_step()
        elif self._mode is ArmMode.CARTESIAN_VELOCITY:
            self._pos_sp = self._pos_sp + self._twist[:3] * dt
            rot = np.zeros(4)
            self._mj.mju_axisAngle2Quat(rot, self._twist[3:] / max(np.linalg.norm(self._twist[3:]), 1e-12), np.linalg.norm(self._twist[3:]) * dt)
            out = np.zeros(4)
            self._mj.mju_mulQuat(out, rot, xyzw_to_wxyz(self._quat_sp))
            self._quat_sp = wxyz_to_xyzw(out)
            self._ik_step()
        elif self._mode is ArmMode.JOINT_VELOCITY:
            self._q_des = np.clip(self._q_des + self._joint_vel * dt, self._q_low, self._q_high)
        data.ctrl[self._arm_act] = self._q_des
        data.qfrc_applied[self._vadr] = data.qfrc_bias[self._vadr]  # gravity and Coriolis compensation
        q = data.qpos[self._finger_qadr]
        dq = data.qvel[self._finger_vadr]
        tau = _HAND_KP * (self._hand_goal_m / 2 - q) - _HAND_KV * dq
        tau = np.where((np.abs(dq) > HAND_SPEED_M_S) & (np.sign(dq) == np.sign(tau)), -_HAND_KV * dq, tau)
        data.qfrc_applied[self._finger_vadr] = np.clip(tau, -self._hand_force_n, self._hand_force_n)

    def _wait_hand_settled(self, timeout_s: float = 3.0) -> float:
        t_end = time.monotonic() + timeout_s
        time.sleep(0.05)
        while time.monotonic() < t_end:
            with self.lock:
                speed = np.abs(self.data.qvel[self._finger_vadr]).max()
                width = float(self.data.qpos[self._finger_qadr].sum())
            if speed < 1e-3:
                return width
            time.sleep(0.01)
        return width

    # ---- Arm --------------------------------------------------------------------------------
    def state(self) -> ArmState:
        if self._thread is None:
            raise DeviceError("the MujocoArm is not connected; call connect() or use it as a context manager.")
        mujoco, model, data = self._mj, self.model, self.data
        with self.lock:
            vel = np.zeros(6)
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_SITE, self._tcp, vel, 0)  # [rot, lin], world
            quat = np.zeros(4)
            mujoco.mju_mat2Quat(quat, data.site_xmat[self._tcp])
            pos = data.site_xpos[self._tcp].copy()
            return ArmState(
                stamp_ns=now_ns(),
                joint_pos_rad=data.qpos[self._qadr].copy(),
                joint_vel_rad_s=data.qvel[self._vadr].copy(),
                ee_pos_m=pos,
                ee_quat_xyzw=wxyz_to_xyzw(quat),
                ee_twist=np.concatenate([vel[3:], vel[:3]]),
                ee_wrench=external_wrench(model, data, self._body_ids, pos),
                gripper_width_m=float(data.qpos[self._finger_qadr].sum()),
                mode=self._mode,
                robot_time_ns=int(round(data.time * 1e9)),
            )

    def _begin(self, mode: ArmMode) -> None:
        if self._thread is None:
            raise DeviceError("the MujocoArm is not connected; call connect() or use it as a context manager.")
        if mode is not self._mode and mode is not ArmMode.JOINT_VELOCITY:
            self._pos_sp, self._quat_sp = self._fk(self._q_des)  # continue from where the servo target is
        self._mode = mode

    def command_pose(self, ee_pos_m, ee_quat_xyzw) -> None:
        with self.lock:
            self._begin(ArmMode.POSE)
            # reach the new target in one command interval: constant speed for a steady stream
            interval_s = float(np.clip(self.data.time - self._last_pose_command_s, 0.005, 0.2))
            self._last_pose_command_s = self.data.time
            self._pos_goal = np.asarray(ee_pos_m, dtype=float).copy()
            distance_m = float(np.linalg.norm(self._pos_goal - self._pos_sp))
            self._setpoint_rate_m_s = min(self.setpoint_speed_m_s, max(distance_m / interval_s, 0.01))
            quat = np.asarray(ee_quat_xyzw, dtype=float)
            self._quat_goal = quat / np.linalg.norm(quat)

    def command_cartesian_velocity(self, twist) -> None:
        with self.lock:
            self._begin(ArmMode.CARTESIAN_VELOCITY)
            self._twist = np.asarray(twist, dtype=float).copy()
            self._command_expiry_s = self.data.time + self.velocity_command_ttl_ms / 1e3

    def command_joint_velocity(self, joint_vel_rad_s) -> None:
        with self.lock:
            self._begin(ArmMode.JOINT_VELOCITY)
            self._joint_vel = np.asarray(joint_vel_rad_s, dtype=float).reshape(7).copy()
            self._command_expiry_s = self.data.time + self.velocity_command_ttl_ms / 1e3

    def hold(self) -> None:
        if self._thread is None:
            return
        with self.lock:
            self._mode = ArmMode.IDLE
            self._twist[:] = 0.0
            self._joint_vel[:] = 0.0
            self._q_des = self.data.qpos[self._qadr].copy()  # the servos now hold where the arm is
            self._pos_sp, self._quat_sp = self._fk(self._q_des)
            self._pos_goal, self._quat_goal = self._pos_sp.copy(), self._quat_sp.copy()


def _conj(q_wxyz: np.ndarray) -> np.ndarray:
    return np.array([q_wxyz[0], -q_wxyz[1], -q_wxyz[2], -q_wxyz[3]])
