"""External wrench on a simulated arm from MuJoCo contacts: the twin of Franka's O_F_ext_hat_K."""

from __future__ import annotations

import numpy as np


def robot_body_ids(model, root_body: str) -> np.ndarray:
    """Ids of the moving bodies of the arm rooted at `root_body` (the ones bolted to the world rest on it: no load)."""
    import mujoco

    root = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, root_body)
    if root < 0:
        raise ValueError(f"body '{root_body}' is not in the MuJoCo model")
    ids = np.arange(model.nbody)
    return ids[(model.body_rootid == root) & (model.body_weldid != 0)]


def external_wrench(model, data, body_ids: np.ndarray, point_m: np.ndarray) -> np.ndarray:
    """Sum of contact forces the world exerts on `body_ids`, as [force_n, torque_nm about point_m] in world axes."""
    import mujoco

    on_robot = np.zeros(model.nbody, dtype=bool)
    on_robot[body_ids] = True
    wrench = np.zeros(6)
    f6 = np.zeros(6)
    for i in range(data.ncon):
        contact = data.contact[i]
        robot1 = on_robot[model.geom_bodyid[contact.geom1]]
        robot2 = on_robot[model.geom_bodyid[contact.geom2]]
        if robot1 == robot2:  # self-contact or world-world: not an external load
            continue
        mujoco.mj_contactForce(model, data, i, f6)
        force_w = contact.frame.reshape(3, 3).T @ f6[:3]  # force geom1 exerts on geom2
        if robot1:
            force_w = -force_w
        wrench[:3] += force_w
        wrench[3:] += np.cross(contact.pos - point_m, force_w)
    return wrench
