"""The Crazyflie X frame's symmetry group, as maps on the actor observation and the rotor commands.

Mirroring the world and the body together through the x-z plane (y -> -y) maps the vehicle onto
itself with motors M1<->M4 and M2<->M3 swapped: a mirror swaps each rotor's position to the other
side and reverses its spin, and M4 sits where M1's mirror image lands, spinning the mirrored way.
Likewise x -> -x swaps M1<->M2 and M3<->M4, and the two together are the 180-degree yaw turn
(M1<->M3, M2<->M4). With reflection ``S = diag(s)``: positions and velocities map to ``S v``, the
body-to-world rotation matrix to ``S R S``, the body rates (a pseudovector) to ``det(S) S w``, the
quaternion (w, v) to (w, det(S) S v), and rotor commands are permuted. The simulator (with noise
and disturbances drawn symmetrically) is exactly equivariant under these maps, which
tests/sim2real/test_quadrotor_symmetry.py checks trajectory by trajectory.

Why it matters: a trained actor is only roughly equivariant; its asymmetric part makes each
snapshot settle 0.1-0.5 m to one side of the target (measured, seeds 0-2). Averaging it over the
group (``policies.symmetric.GroupAveragedPolicy``) removes that part exactly.
"""

from __future__ import annotations

import numpy as np

from sim2real.quadrotor import observation as ob

# name: (diagonal of the reflection S, motor permutation: command'[i] = command[permutation[i]])
GROUP: dict[str, tuple[tuple[float, float, float], tuple[int, int, int, int]]] = {
    "identity": ((1.0, 1.0, 1.0), (0, 1, 2, 3)),
    "mirror_y": ((1.0, -1.0, 1.0), (3, 2, 1, 0)),
    "mirror_x": ((-1.0, 1.0, 1.0), (1, 0, 3, 2)),
    "yaw_180": ((-1.0, -1.0, 1.0), (2, 3, 0, 1)),
}


def actor_obs_map(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(index, sign), both (146,): the mapped observation is ``obs[..., index] * sign``."""
    s, permutation = (np.asarray(part) for part in GROUP[name])
    det = np.prod(s)
    index = np.arange(ob.ACTOR_OBS_DIM)
    sign = np.ones(ob.ACTOR_OBS_DIM, np.float32)
    sign[ob.ACTOR["position_error_m"]] = s
    sign[ob.ACTOR["rotation_matrix"]] = np.outer(s, s).ravel()  # (S R S)_ij = s_i s_j R_ij, row-major
    sign[ob.ACTOR["linear_velocity_m_s"]] = s
    sign[ob.ACTOR["angular_velocity_rad_s"]] = det * s
    start = ob.HISTORY.start
    for k in range(ob.ACTION_HISTORY_LENGTH):
        index[start + 4 * k:start + 4 * k + 4] = start + 4 * k + permutation
    return index, sign


def group_maps() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(obs_index (G, 146), obs_sign (G, 146), action_index (G, 4)) for every element; each is its own inverse."""
    maps = [actor_obs_map(name) for name in GROUP]
    return (np.stack([index for index, _ in maps]), np.stack([sign for _, sign in maps]),
            np.array([permutation for _, permutation in GROUP.values()]))


def map_state(name: str, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The image of a ``VecQuadrotorHover.state``-style dict (positions relative to the target) under one element."""
    s, permutation = (np.asarray(part) for part in GROUP[name])
    det = np.prod(s)
    quaternion = np.array(state["quaternion_wxyz"], np.float64)
    quaternion[..., 1:] *= det * s
    return {
        "position_m": state["position_m"] * s, "quaternion_wxyz": quaternion,
        "linear_velocity_m_s": state["linear_velocity_m_s"] * s,
        "angular_velocity_rad_s": state["angular_velocity_rad_s"] * det * s,
        "rpm": state["rpm"][..., permutation],
        "disturbance_force_n": state["disturbance_force_n"] * s,
        "disturbance_torque_nm": state["disturbance_torque_nm"] * det * s,
    }
