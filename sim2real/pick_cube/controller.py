"""Operational-space controller: end-effector position tracking, hand pointing down, nullspace posture.

Runs every physics substep (500 Hz) between `mj_step1` and `mj_step2`, so it reads kinematics,
the mass-matrix factorization and the bias forces of the current state without recomputing them.
All buffers are allocated once; a call makes no Python-level array allocations.
"""

from __future__ import annotations

import mujoco
import numpy as np

# Hand z down, fingers opening along world y: a 180 deg turn about world x.
HAND_DOWN_QUAT = np.array([0.0, 1.0, 0.0, 0.0])
# Task-space stiffness in 1/s^2 (inertia-shaped, so sqrt gives the natural frequency: 30 rad/s).
POSITION_STIFFNESS = 900.0
ORIENTATION_STIFFNESS = 900.0
# Joint-space posture spring (N*m/rad) and damper (N*m*s/rad), projected into the nullspace.
POSTURE_STIFFNESS = 20.0
POSTURE_DAMPING = 4.0


class OperationalSpaceController:
    """Writes arm joint torques into `data.ctrl` so the `site` tracks `target_pos_m`."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData, site: str, arm_joints, posture_q):
        self._model, self._data = model, data
        self._site_id = model.site(site).id
        dofs = [int(model.jnt_dofadr[model.joint(j).id]) for j in arm_joints]
        actuators = [model.actuator(j).id for j in arm_joints]
        # Contiguous slices keep every per-substep read and write a cheap view.
        if dofs != list(range(dofs[0], dofs[0] + len(dofs))) or actuators != list(
            range(actuators[0], actuators[0] + len(actuators))
        ):
            raise ValueError("arm joints and their motors must be contiguous in the model")
        self._dofs = slice(dofs[0], dofs[-1] + 1)
        self._ctrl = data.ctrl[actuators[0] : actuators[-1] + 1]
        self._qpos = data.qpos[model.jnt_qposadr[model.joint(arm_joints[0]).id] :][: len(dofs)]
        self._qvel = data.qvel[self._dofs]
        self._bias = data.qfrc_bias[self._dofs]
        self._site_pos = data.site_xpos[self._site_id]
        self._site_mat = data.site_xmat[self._site_id]

        self.posture_q = np.array(posture_q, dtype=float)
        self.target_pos_m = np.array(self._site_pos)
        self.target_quat = HAND_DOWN_QUAT.copy()
        stiffness = np.array([POSITION_STIFFNESS] * 3 + [ORIENTATION_STIFFNESS] * 3)
        self._stiffness = stiffness
        self._damping = 2.0 * np.sqrt(stiffness)  # critical damping

        nv = model.nv
        self._jac = np.zeros((6, nv))
        self._jac_pos, self._jac_rot, self._jac_t = self._jac[:3], self._jac[3:], self._jac.T
        self._jac_minv = np.zeros((6, nv))
        self._lambda_inv = np.zeros((6, 6))
        self._twist = np.zeros(6)
        self._error = np.zeros(6)
        self._pos_error, self._rot_error = self._error[:3], self._error[3:]
        self._accel = np.zeros(6)
        self._scratch6 = np.zeros(6)
        self._wrench = np.zeros(6)
        self._posture_torque = np.zeros(nv)
        self._arm_posture_torque = self._posture_torque[self._dofs]
        self._torque = np.zeros(nv)
        self._arm_torque = self._torque[self._dofs]
        self._scratch_arm = np.zeros(len(dofs))
        self._all_qvel = data.qvel
        self._quat = np.zeros(4)
        self._quat_conj = np.zeros(4)
        self._quat_err = np.zeros(4)

    def ee_velocity(self, out: np.ndarray) -> np.ndarray:
        """Linear velocity of the site (m/s) in the world frame, from the current state."""
        mujoco.mj_jacSite(self._model, self._data, self._jac_pos, self._jac_rot, self._site_id)
        return np.matmul(self._jac_pos, self._all_qvel, out=out)

    def apply(self) -> None:
        model, data, jac = self._model, self._data, self._jac
        mujoco.mj_jacSite(model, data, self._jac_pos, self._jac_rot, self._site_id)
        mujoco.mj_solveM(model, data, self._jac_minv, jac)
        np.matmul(self._jac_minv, self._jac_t, out=self._lambda_inv)
        np.matmul(jac, self._all_qvel, out=self._twist)

        # Task error: position, then the rotation vector taking the hand to the target (world frame).
        np.subtract(self.target_pos_m, self._site_pos, out=self._pos_error)
        mujoco.mju_mat2Quat(self._quat, self._site_mat)
        mujoco.mju_negQuat(self._quat_conj, self._quat)
        mujoco.mju_mulQuat(self._quat_err, self.target_quat, self._quat_conj)
        mujoco.mju_quat2Vel(self._rot_error, self._quat_err, 1.0)
        np.multiply(self._stiffness, self._error, out=self._accel)
        np.multiply(self._damping, self._twist, out=self._scratch6)
        np.subtract(self._accel, self._scratch6, out=self._accel)

        # Posture torque, then tau = J^T Lambda (a - J M^-1 tau0) + tau0: tau0 acts only in the nullspace.
        posture = self._arm_posture_torque
        np.subtract(self.posture_q, self._qpos, out=posture)
        np.multiply(posture, POSTURE_STIFFNESS, out=posture)
        np.multiply(self._qvel, POSTURE_DAMPING, out=self._scratch_arm)
        np.subtract(posture, self._scratch_arm, out=posture)
        np.matmul(self._jac_minv, self._posture_torque, out=self._scratch6)
        np.subtract(self._accel, self._scratch6, out=self._accel)
        mujoco.mju_cholFactor(self._lambda_inv, 1e-9)
        mujoco.mju_cholSolve(self._wrench, self._lambda_inv, self._accel)
        np.matmul(self._jac_t, self._wrench, out=self._torque)
        np.add(self._arm_torque, self._arm_posture_torque, out=self._ctrl)
        np.add(self._ctrl, self._bias, out=self._ctrl)
