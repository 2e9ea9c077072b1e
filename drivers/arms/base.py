"""The `Arm` interface: one small ABC that every arm backend (franky, MuJoCo) implements.

Poses are in the robot base frame: position in metres, orientation as a unit quaternion in
(x, y, z, w) order (libfranka/Eigen and scipy order; MuJoCo uses w-first, converted at the edge).
"""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


class ArmMode(enum.Enum):
    IDLE = "idle"  # holding still, no command stream running
    POSE = "pose"  # streaming Cartesian pose targets
    CARTESIAN_VELOCITY = "cartesian_velocity"
    JOINT_VELOCITY = "joint_velocity"
    FAULT = "fault"


@dataclass(frozen=True)
class ArmFault:
    """Why the arm stopped; `recoverable` says whether automatic error recovery is safe to try."""

    reason: str
    stamp_ns: int
    recoverable: bool


@dataclass(frozen=True)
class ArmState:
    stamp_ns: int  # host time.monotonic_ns() when the reading was taken
    joint_pos_rad: np.ndarray  # (7,)
    joint_vel_rad_s: np.ndarray  # (7,)
    ee_pos_m: np.ndarray  # (3,) tool centre point in the base frame
    ee_quat_xyzw: np.ndarray  # (4,)
    ee_twist: np.ndarray  # (6,) [v_m_s (3), w_rad_s (3)] in the base frame
    ee_wrench: np.ndarray  # (6,) external [force_n (3), torque_nm (3)] on the end effector, base frame
    gripper_width_m: float
    mode: ArmMode
    fault: ArmFault | None = None
    robot_time_ns: int | None = None  # the controller's own clock (libfranka robot time, sim time), if it has one

    @property
    def ee_force_n(self) -> float:
        return float(np.linalg.norm(self.ee_wrench[:3]))


def now_ns() -> int:
    return time.monotonic_ns()


class Gripper(ABC):
    """A parallel gripper. Widths in metres, speeds in m/s, forces in N."""

    @abstractmethod
    def open(self) -> bool: ...

    @abstractmethod
    def close(self) -> bool:
        """Close fully (a move to zero width, no force control)."""

    @abstractmethod
    def grasp(self, width_m: float, force_n: float, tolerance_m: float = 0.01) -> bool:
        """Close until blocked, squeezing with `force_n`; True if the fingers stopped within
        `tolerance_m` of `width_m` (an object of that width is held), as the Franka Hand judges it."""

    @abstractmethod
    def width_m(self) -> float: ...


class Arm(ABC):
    """A 7-DoF arm with a gripper, commanded at the policy rate over a faster inner controller.

    A command mode starts with its first command; switching modes stops the running one first.
    `hold()` is the safe state: the arm decelerates and holds its current pose.
    """

    gripper: Gripper

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Hold, then release the connection (the gripper is `arm.gripper.close()`)."""

    @abstractmethod
    def state(self) -> ArmState: ...

    @abstractmethod
    def command_pose(self, ee_pos_m: np.ndarray, ee_quat_xyzw: np.ndarray) -> None:
        """Stream a Cartesian (impedance) target; replaces the previous target."""

    @abstractmethod
    def command_cartesian_velocity(self, twist: np.ndarray) -> None:
        """[v_m_s (3), w_rad_s (3)] in the base frame; the arm stops by itself if not refreshed."""

    @abstractmethod
    def command_joint_velocity(self, joint_vel_rad_s: np.ndarray) -> None:
        """(7,) rad/s; the arm stops by itself if not refreshed."""

    @abstractmethod
    def hold(self) -> None:
        """Safe state: stop the running command, decelerate, and hold the current pose."""

    def recover(self) -> bool:
        """Clear a recoverable fault; returns whether the arm can take commands again."""
        return self.state().fault is None

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
