"""The actor's logic without ROS: newest data per topic -> observation -> policy -> mixed command.

The state vector is the concatenation of `state_fields` (names below) in order; images are checked
against the policy's expected shapes. When any topic is silent (older than `max_age_ms`), the
decision is to hold (zero twist) and the silent topics are named. A fresh, engaged intervention
replaces the policy's command; both are reported, with the `intervened` flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from robot_rl_ros.assembly import ObservationAssembler

# field name -> (topic kind it comes from, width)
STATE_FIELDS = {"ee_pos": ("pose", 3), "ee_quat": ("pose", 4), "joint_pos": ("joints", 7), "gripper_width": ("joints", 1)}


def state_width(fields: list[str]) -> int:
    unknown = [f for f in fields if f not in STATE_FIELDS]
    if unknown:
        raise ValueError(f"state_fields {unknown} are unknown; use names from {sorted(STATE_FIELDS)}.")
    return sum(STATE_FIELDS[f][1] for f in fields)


def state_vector(fields: list[str], pose: dict[str, np.ndarray], joints: np.ndarray) -> np.ndarray:
    parts = {"ee_pos": pose["pos"], "ee_quat": pose["quat"], "joint_pos": joints[:7], "gripper_width": joints[7:8]}
    return np.concatenate([parts[f] for f in fields]).astype(np.float32)


@dataclass
class Decision:
    twist: np.ndarray  # (6,) the command to execute
    gripper: float | None  # -1 open .. +1 close, None = leave it
    intervened: bool
    policy_action: np.ndarray | None  # what the policy asked for (None while holding)
    silent: list[str]  # topics that made the actor hold
    obs: dict[str, np.ndarray] | None = None  # what the policy saw (None while holding)


class ActorCore:
    """`policy(obs) -> action`; the first `twist_dims` action components are the twist (m/s, rad/s),
    component `gripper_index` (if >= 0) the gripper command."""

    def __init__(self, policy: Callable[[dict], np.ndarray], state_fields: list[str], pose_topic: str, joints_topic: str,
                 image_topics: dict[str, str], max_age_ms: float, twist_dims: int = 3, gripper_index: int = -1,
                 expected_state_dim: int | None = None):
        width = state_width(state_fields)
        if expected_state_dim is not None and width != expected_state_dim:
            raise ValueError(f"state_fields {state_fields} make {width} numbers but the policy expects {expected_state_dim}; set state_fields to match the policy's observation.")
        self.policy, self.state_fields = policy, state_fields
        self.pose_topic, self.joints_topic, self.image_topics = pose_topic, joints_topic, image_topics
        needs = {STATE_FIELDS[f][0] for f in state_fields}
        topics = ([pose_topic] if "pose" in needs else []) + ([joints_topic] if "joints" in needs else []) + list(image_topics.values())
        self.assembler = ObservationAssembler(topics, max_age_ms)
        self.twist_dims, self.gripper_index = twist_dims, gripper_index

    def intervention(self, twist: np.ndarray | None, gripper: float, engaged: bool, twist_age_ms: float) -> tuple[np.ndarray, float] | None:
        fresh = twist is not None and twist_age_ms <= self.assembler.max_age_ms
        return (twist, gripper) if engaged and fresh else None

    def step(self, now_ns: int, intervention: tuple[np.ndarray, float] | None = None) -> Decision:
        parts, silent = self.assembler.assemble(now_ns)
        if parts is None:
            return Decision(np.zeros(6), None, False, None, silent)
        pose = parts.get(self.pose_topic)
        joints = parts.get(self.joints_topic)
        obs = {"state": state_vector(self.state_fields, pose or {}, joints if joints is not None else np.zeros(8))}
        obs.update({key: parts[topic] for key, topic in self.image_topics.items()})
        action = np.asarray(self.policy(obs), dtype=float)
        twist = np.zeros(6)
        twist[: self.twist_dims] = action[: self.twist_dims]
        gripper = float(np.clip(action[self.gripper_index], -1, 1)) if self.gripper_index >= 0 else None
        if not np.all(np.isfinite(twist)):  # a broken policy never moves the robot
            return Decision(np.zeros(6), None, False, action, ["policy (non-finite action)"])
        if intervention is not None:
            return Decision(np.asarray(intervention[0], float), intervention[1] if intervention[1] else gripper, True, action, [], obs)
        return Decision(twist, gripper, False, action, [], obs)

    def executed_action(self, decision: Decision) -> np.ndarray | None:
        """The action actually commanded, in the policy's layout and units (an intervention replaces the policy's)."""
        if decision.policy_action is None or decision.obs is None:
            return None
        action = np.array(decision.policy_action, dtype=np.float32)
        action[: self.twist_dims] = decision.twist[: self.twist_dims]
        if self.gripper_index >= 0 and decision.gripper is not None:
            action[self.gripper_index] = decision.gripper
        return action
