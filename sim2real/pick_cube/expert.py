"""A scripted pick-cube expert: reach above the cube, descend, close, lift.

It reads the simulator's true state (not the observation), so it can stand in for a
teleoperator: `expert.act(obs)` returns an action in [-1, 1]^4 for the env's current step.
"""

from __future__ import annotations

import numpy as np

HOVER_ABOVE_CUBE_M = 0.06
XY_ALIGNED_M = 0.01  # start descending once the fingers straddle the cube this closely
# Close once the pads surround the cube: 2 cm of finger clearance each side in y, 4 cm cube faces.
AT_GRASP_M = np.array([0.012, 0.012, 0.008])
CLOSE_STEPS = 2  # the fingers close in ~0.1 s; a second step lets the squeeze settle
LIFT_ABOVE_REST_M = 0.12


class PickCubeExpert:
    """State machine over the unwrapped PickCubeEnv; `action_noise_std` adds Gaussian noise to a[0:3]."""

    def __init__(self, env, action_noise_std: float = 0.0, seed: int | None = None):
        self.env = env.unwrapped
        self.action_noise_std = action_noise_std
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        self.phase = "reach"
        self._closed_steps = 0

    def act(self, obs=None) -> np.ndarray:
        """The action for the env's current state; `obs` is accepted for a policy-like call and unused."""
        env = self.env
        if env.elapsed_steps == 0:
            self.reset()
        ee, cube = env.ee_pos_m, env.cube_pos_m
        grasp = np.array([cube[0], cube[1], cube[2]])
        close = False

        if self.phase == "lift" and np.linalg.norm(cube - ee) > 0.03:
            self.reset()  # the cube slipped: start over
        if self.phase == "reach":
            target = grasp + (0.0, 0.0, HOVER_ABOVE_CUBE_M)
            if np.linalg.norm((target - ee)[:2]) < XY_ALIGNED_M:
                self.phase = "descend"
        if self.phase == "descend":
            target = grasp
            if np.all(np.abs(target - ee) < AT_GRASP_M):
                self.phase = "close"
        if self.phase == "close":
            target, close = grasp, True
            self._closed_steps += 1
            if self._closed_steps > CLOSE_STEPS:
                self.phase = "lift"
        if self.phase == "lift":
            target, close = np.array([ee[0], ee[1], env.cube_rest_z_m + LIFT_ABOVE_REST_M]), True

        delta = (target - ee) / env.max_step_m
        if self.action_noise_std > 0:
            delta = delta + self._rng.normal(0.0, self.action_noise_std, 3)
        return np.append(np.clip(delta, -1.0, 1.0), 1.0 if close else -1.0).astype(np.float32)
