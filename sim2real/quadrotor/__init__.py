"""Crazyflie simulator faithful to "Learning to Fly in Seconds" (Eschmann et al. 2023)."""

from sim2real.quadrotor.env import QuadrotorHoverEnv, VecQuadrotorHover
from sim2real.quadrotor.observation import (
    ACTION_HISTORY_LENGTH,
    ACTOR_OBS_DIM,
    ACTOR_OBS_LAYOUT,
    CRITIC_OBS_DIM,
    CRITIC_OBS_LAYOUT,
)
from sim2real.quadrotor.params import CRAZYFLIE, CrazyflieParams
from sim2real.quadrotor.reward import L2F_INITIAL_REWARD, L2F_TARGET_REWARD, RewardWeights, l2f_curriculum_step
from sim2real.quadrotor.task import DomainRandomization, HoverTaskConfig
from sim2real.quadrotor.trajectory import figure_eight

__all__ = [
    "ACTION_HISTORY_LENGTH",
    "ACTOR_OBS_DIM",
    "ACTOR_OBS_LAYOUT",
    "CRAZYFLIE",
    "CRITIC_OBS_DIM",
    "CRITIC_OBS_LAYOUT",
    "CrazyflieParams",
    "DomainRandomization",
    "HoverTaskConfig",
    "L2F_INITIAL_REWARD",
    "L2F_TARGET_REWARD",
    "QuadrotorHoverEnv",
    "RewardWeights",
    "VecQuadrotorHover",
    "figure_eight",
    "l2f_curriculum_step",
]
