"""L2F's squared-cost hover reward and its reward-weight curriculum.

``reward = constant - scale * (position * |p - p_ref|^2 + orientation * (1 - q_w^2)
+ linear_velocity * |v - v_ref|^2 + angular_velocity * |w|^2 + action * |a - action_baseline|^2)``,
evaluated on the state before the step, and ``termination_penalty`` instead on the step
that terminates (L2F ``reward_functions/squared.h``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class RewardWeights:
    scale: float = 0.5
    constant: float = 2.0
    termination_penalty: float = 0.0
    position: float = 5.0
    orientation: float = 5.0
    linear_velocity: float = 0.01
    angular_velocity: float = 0.0
    action: float = 0.01
    action_baseline: float = 0.334  # L2F's rounded hover action


# L2F reward_squared_position_only_torque: the weights training starts from
L2F_INITIAL_REWARD = RewardWeights()
# L2F reward_squared_position_only_torque_curriculum_target: where the curriculum ends
L2F_TARGET_REWARD = RewardWeights(position=40.0, linear_velocity=1.0, action=1.0)


def l2f_curriculum_step(weights: RewardWeights) -> RewardWeights:
    """One curriculum stage (L2F applies it every 100k env steps): grow the weights up to their caps."""
    return replace(
        weights,
        position=min(weights.position * 1.2, L2F_TARGET_REWARD.position),
        linear_velocity=min(weights.linear_velocity * 1.4, L2F_TARGET_REWARD.linear_velocity),
        action=min(weights.action * 1.4, L2F_TARGET_REWARD.action),
    )


def hover_cost(
    weights: RewardWeights,
    position_error_m: np.ndarray,
    quaternion_w: np.ndarray,
    velocity_error_m_s: np.ndarray,
    angular_velocity_rad_s: np.ndarray,
    action: np.ndarray,
) -> np.ndarray:
    """Weighted cost per env; vector arguments are (3, N) / (4, N), quaternion_w is (N,)."""
    cost = weights.position * (position_error_m**2).sum(axis=0)
    cost += weights.orientation * (1.0 - quaternion_w**2)
    cost += weights.linear_velocity * (velocity_error_m_s**2).sum(axis=0)
    if weights.angular_velocity:
        cost += weights.angular_velocity * (angular_velocity_rad_s**2).sum(axis=0)
    if weights.action:
        cost += weights.action * ((action - weights.action_baseline) ** 2).sum(axis=0)
    return cost


def hover_reward(weights: RewardWeights, cost: np.ndarray, terminated: np.ndarray) -> np.ndarray:
    return np.where(terminated, weights.termination_penalty, weights.constant - weights.scale * cost)
