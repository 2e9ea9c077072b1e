"""Damped least-squares inverse kinematics, used to place the arm at reset."""

from __future__ import annotations

import mujoco
import numpy as np

DAMPING = 1e-4


class ArmIK:
    """Joint angles that put a site at a position and orientation, on a private MjData."""

    def __init__(self, model: mujoco.MjModel, site: str, arm_joints):
        self._model = model
        self._data = mujoco.MjData(model)
        self._site_id = model.site(site).id
        joint_ids = [model.joint(j).id for j in arm_joints]
        self._qpos_adr = np.array([model.jnt_qposadr[j] for j in joint_ids])
        self._dof_adr = np.array([model.jnt_dofadr[j] for j in joint_ids])
        self._low, self._high = model.jnt_range[joint_ids].T
        self._jac = np.zeros((6, model.nv))
        self._error = np.zeros(6)
        self._quat = np.zeros(4)
        self._quat_err = np.zeros(4)

    def solve(self, pos_m, quat, q_init, iterations: int = 100, tol: float = 1e-6) -> np.ndarray:
        model, data, q = self._model, self._data, np.array(q_init, dtype=float)
        for _ in range(iterations):
            data.qpos[self._qpos_adr] = q
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            self._error[:3] = pos_m - data.site_xpos[self._site_id]
            mujoco.mju_mat2Quat(self._quat, data.site_xmat[self._site_id])
            mujoco.mju_negQuat(self._quat, self._quat)
            mujoco.mju_mulQuat(self._quat_err, np.asarray(quat, dtype=float), self._quat)
            mujoco.mju_quat2Vel(self._error[3:], self._quat_err, 1.0)
            if self._error @ self._error < tol**2:
                break
            mujoco.mj_jacSite(model, data, self._jac[:3], self._jac[3:], self._site_id)
            jac = self._jac[:, self._dof_adr]
            dq = jac.T @ np.linalg.solve(jac @ jac.T + DAMPING * np.eye(6), self._error)
            q = np.clip(q + dq, self._low, self._high)
        return q
