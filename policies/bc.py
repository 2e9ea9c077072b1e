"""Behaviour cloning from recorded episodes: an MLP that predicts a chunk of K future actions.

Action chunking (ACT, Zhao et al. 2023): the network predicts a_t..a_{t+K-1} from o_t, trained
with a masked MSE (steps past an episode's end do not count). At run time the policy executes
the first action of the chunk and predicts again at the next step (receding horizon), so the
deployed graph is stateless like every other export; K = 1 is a plain MLP policy. The longer
horizon acts as an auxiliary target that smooths what the first step learns.

Observations are normalized inside the network with the training set's mean and std, so the
export takes raw observations like a SAC export. Checkpoints are safetensors (tensors plus a
JSON header), never pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from policies.networks import ObsEncoder, mlp
from robot_rl.spaces import ObsSpec

SOURCES = ("demos", "bc", "both")
BC_META_KEY = "robot_rl.bc"


@dataclass
class BCSettings:
    chunk: int = 4  # actions predicted per observation (ACT uses far more at 50 Hz; 4 steps = 0.4 s at 10 Hz)
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    layer_norm: bool = True
    steps: int = 3000  # gradient steps
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    image_encoder_channels: list[int] = field(default_factory=lambda: [32, 32, 32, 32])
    image_encoder_strides: list[int] = field(default_factory=lambda: [2, 1, 1, 1])
    image_latent_dim: int = 50
    seed: int = 0


class BCPolicy(nn.Module):
    """obs -> [B, K, A] normalized actions in [-1, 1]; ``forward`` returns the first one in env units (the export)."""

    def __init__(self, spec: ObsSpec, action_low, action_high, settings: BCSettings):
        super().__init__()
        self.spec, self.settings = spec, settings
        self.action_dim = len(action_low)
        self.encoder = ObsEncoder(spec.state_dim, spec.image_shapes, settings.image_encoder_channels,
                                  settings.image_latent_dim, settings.image_encoder_strides)
        self.head = mlp(self.encoder.output_dim, settings.hidden_dims, settings.chunk * self.action_dim, settings.layer_norm)
        low = torch.as_tensor(np.asarray(action_low, np.float32))
        high = torch.as_tensor(np.asarray(action_high, np.float32))
        self.register_buffer("action_scale", (high - low) / 2.0)
        self.register_buffer("action_bias", (high + low) / 2.0)
        self.register_buffer("state_mean", torch.zeros(spec.state_dim))
        self.register_buffer("state_std", torch.ones(spec.state_dim))

    def chunk(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        obs = {**obs, "state": (obs["state"] - self.state_mean) / self.state_std}
        out = torch.tanh(self.head(self.encoder(obs)))
        return out.view(-1, self.settings.chunk, self.action_dim)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.chunk(obs)[:, 0] * self.action_scale + self.action_bias

    @torch.no_grad()
    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """One observation -> the first action of the chunk, normalized to [-1, 1]."""
        batch = {k: torch.from_numpy(np.ascontiguousarray(v)).unsqueeze(0) for k, v in obs.items()}
        return self.chunk(batch)[0, 0].numpy()


# ----- data ---------------------------------------------------------------------------------------
def episode_dirs(run_root: str | Path, source: str) -> list[Path]:
    if source not in SOURCES:
        raise ValueError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    root = Path(run_root)
    return {"demos": [root / "demos"], "bc": [root / "bc"], "both": [root / "demos", root / "bc"]}[source]


def chunk_dataset(episodes: list[dict[str, np.ndarray]], spec: ObsSpec, chunk: int) -> dict[str, np.ndarray]:
    """Per step t of every episode: o_t, actions t..t+K-1 (the last action repeated past the end) and a validity mask."""
    keys = ["state", *spec.image_keys]
    obs = {k: [] for k in keys}
    targets, masks = [], []
    for episode in episodes:
        missing = [k for k in keys if f"obs/{k}" not in episode]
        if missing:
            raise ValueError(f"an episode lacks observation keys {missing}; it was recorded for another task")
        if spec.state_dim and episode["obs/state"].shape[-1] != spec.state_dim:
            raise ValueError(f"an episode has {episode['obs/state'].shape[-1]} state values, the task {spec.state_dim}: "
                             f"it was recorded for another task (or with a residual base in the state)")
        actions = np.asarray(episode["action"], np.float32)
        steps = len(actions)
        if steps == 0:
            continue
        index = np.arange(steps)[:, None] + np.arange(chunk)[None, :]
        targets.append(actions[np.minimum(index, steps - 1)])
        masks.append((index < steps).astype(np.float32))
        for k in keys:
            obs[k].append(episode[f"obs/{k}"][:steps])
    if not targets:
        raise ValueError("no episode steps to learn from")
    data = {f"obs/{k}": np.concatenate(v) for k, v in obs.items()}
    data.update(actions=np.concatenate(targets), mask=np.concatenate(masks))
    return data


# ----- training -----------------------------------------------------------------------------------
def train_bc(episodes: list[dict[str, np.ndarray]], spec: ObsSpec, action_low, action_high,
             settings: BCSettings, log=None) -> tuple[BCPolicy, dict]:
    """Fit a BC policy; returns it (eval mode) and training figures."""
    torch.manual_seed(settings.seed)
    data = chunk_dataset(episodes, spec, settings.chunk)
    policy = BCPolicy(spec, action_low, action_high, settings)
    states = data["obs/state"]
    if spec.state_dim:
        policy.state_mean.copy_(torch.from_numpy(states.mean(0)))
        policy.state_std.copy_(torch.from_numpy(np.maximum(states.std(0), 1e-3)))  # constant entries stay finite
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()}
    count = len(states)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(settings.steps, 1))
    generator = torch.Generator().manual_seed(settings.seed)
    policy.train()
    losses = []
    for step in range(settings.steps):
        idx = torch.randint(0, count, (min(settings.batch_size, count),), generator=generator)
        obs = {k[len("obs/"):]: v[idx] for k, v in tensors.items() if k.startswith("obs/")}
        mask = tensors["mask"][idx].unsqueeze(-1)
        loss = (F.mse_loss(policy.chunk(obs), tensors["actions"][idx], reduction="none") * mask).sum() / (
            mask.sum() * policy.action_dim)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if log is not None and (step + 1) % max(settings.steps // 5, 1) == 0:
            log(f"bc step {step + 1}/{settings.steps}: loss {np.mean(losses[-100:]):.4f}")
    policy.eval()
    return policy, {"transitions": count, "episodes": len(episodes), "final_loss": float(np.mean(losses[-100:]))}


# ----- checkpoints --------------------------------------------------------------------------------
def save_bc(policy: BCPolicy, path: str | Path, extra: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"settings": asdict(policy.settings), "obs_spec": policy.spec.to_dict(),
            "action_low": (policy.action_bias - policy.action_scale).tolist(),
            "action_high": (policy.action_bias + policy.action_scale).tolist(), **(extra or {})}
    state = {k: v.detach().contiguous() for k, v in policy.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    safetensors.torch.save_file(state, str(tmp), metadata={BC_META_KEY: json.dumps(meta)})
    tmp.replace(path)
    return path


def load_bc(path: str | Path) -> BCPolicy:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get(BC_META_KEY, "null") or "null")
    if meta is None:
        raise ValueError(f"{path} is not a BC checkpoint written by robot-rl train-bc")
    policy = BCPolicy(ObsSpec.from_dict(meta["obs_spec"]), meta["action_low"], meta["action_high"],
                      BCSettings(**meta["settings"]))
    policy.load_state_dict(safetensors.torch.load_file(str(path)))
    return policy.eval()
