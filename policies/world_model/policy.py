"""The world-model policy as deployed: MPPI planning per observation, and the policy prior exported to ONNX.

``WorldModelPolicy`` is what the policy server serves (``act_batch``, ``version``, ``load_weights``);
``PriorPolicy`` is the part that can be exported: the MPPI planner loops, samples and sorts, so it is
not an ONNX graph, and an exported world-model policy acts with its prior alone.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from policies.world_model.config import ModelSettings, PlannerSettings
from policies.world_model.model import WorldModel
from policies.world_model.planner import Decision, MPPIPlanner
from robot_rl.spaces import ObsSpec


class PriorPolicy(nn.Module):
    """{"state": float[B, S]} -> action in env units [B, A]: encoder + deterministic prior (the ONNX export)."""

    def __init__(self, model: WorldModel, action_low, action_high):
        super().__init__()
        self.model, self.action_dim = model, model.action_dim
        low, high = (torch.as_tensor(np.asarray(b, np.float32)) for b in (action_low, action_high))
        self.register_buffer("center", (high + low) / 2)
        self.register_buffer("half_range", (high - low) / 2)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        action = self.model.pi_mean(self.model.encode(obs["state"]))
        return action * self.half_range + self.center


def model_to_bytes(model: WorldModel) -> bytes:
    from robot_rl.acting import weights_to_bytes  # the link's one weights format (imported late: robot_rl imports policies)

    return weights_to_bytes({k: v.detach().contiguous() for k, v in model.state_dict().items()})


class WorldModelPolicy:
    """Plans with MPPI (time-budgeted) for each observation; ``last_decisions`` says which path each took.

    The warm start carries over between calls only for single observations (one robot); a batch of
    several observations is planned row by row without it, since rows need not be the same robot.
    """

    def __init__(self, spec: ObsSpec, action_dim: int, model_settings: ModelSettings, planner: PlannerSettings,
                 discount: float, seed: int = 0):
        if spec.has_images:
            raise ValueError("the world-model policy takes state observations only; use a state task (e.g. robot_rl/PickCube-v0)")
        self.obs_spec, self.action_dim, self.version = spec, action_dim, -1
        self.model = WorldModel(spec.state_dim, action_dim, model_settings).eval()
        self.planner = MPPIPlanner(self.model, planner, discount, seed)
        self.last_decisions: list[Decision] = []

    def reset(self) -> None:
        """A new episode: drop the warm start."""
        self.planner.reset()

    def load_state(self, state: dict[str, torch.Tensor], version: int) -> None:
        self.model.load_state_dict(state)
        self.version = version

    def load_weights(self, blob: bytes, version: int) -> None:
        """safetensors bytes of ``WorldModel.state_dict()``; refused (old weights kept) when they do not fit."""
        from policies.server import WeightsRejected, describe_mismatch
        from robot_rl.acting import weights_from_bytes

        try:
            state = weights_from_bytes(blob)
        except Exception:  # safetensors raises its own error type for bytes that are not safetensors
            raise WeightsRejected("not_safetensors", "world-model weights are a safetensors blob of "
                                  "WorldModel.state_dict()") from None
        problem = describe_mismatch({k: list(v.shape) for k, v in self.model.state_dict().items()},
                            {k: list(v.shape) for k, v in state.items()})
        if problem:
            raise WeightsRejected("weights_mismatch", f"world-model weights do not fit this model: {problem}")
        self.load_state(state, version)

    def act(self, state: np.ndarray, explore: bool = False) -> Decision:
        return self.planner.plan(state, explore)

    def act_batch(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        states = np.asarray(obs["state"], np.float32).reshape(-1, self.obs_spec.state_dim)
        if len(states) > 1:
            self.planner.reset()
        self.last_decisions = [self.planner.plan(row) for row in states]
        if len(states) > 1:
            self.planner.reset()
        return np.stack([d.action for d in self.last_decisions]).astype(np.float32)
