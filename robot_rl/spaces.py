"""Observation layout shared by the actor, the replay store, the learner and the exporter.

Every environment observation becomes a dict of arrays: ``"state"`` (float32 vector, all
non-image parts concatenated) and one ``uint8`` HxWx3 array per camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class ObsSpec:
    state_dim: int
    image_shapes: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    state_keys: tuple[str, ...] = ()  # Dict-space keys concatenated into "state", in order

    @property
    def image_keys(self) -> tuple[str, ...]:
        return tuple(self.image_shapes)

    @property
    def has_images(self) -> bool:
        return bool(self.image_shapes)

    def to_dict(self) -> dict:
        return {
            "state_dim": self.state_dim,
            "image_shapes": {k: list(v) for k, v in self.image_shapes.items()},
            "state_keys": list(self.state_keys),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ObsSpec":
        return cls(
            state_dim=int(data["state_dim"]),
            image_shapes={k: tuple(int(x) for x in v) for k, v in data["image_shapes"].items()},
            state_keys=tuple(data.get("state_keys", ())),
        )

    def empty(self, batch: int) -> dict[str, np.ndarray]:
        out = {"state": np.zeros((batch, self.state_dim), np.float32)}
        for key, shape in self.image_shapes.items():
            out[key] = np.zeros((batch, *shape), np.uint8)
        return out


def _is_image(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


def obs_spec_from_space(space: gym.Space) -> ObsSpec:
    if isinstance(space, gym.spaces.Box) and not _is_image(space):
        return ObsSpec(state_dim=int(np.prod(space.shape)))
    if isinstance(space, gym.spaces.Dict):
        images, state_keys, state_dim = {}, [], 0
        for key, sub in space.spaces.items():
            if _is_image(sub):
                if sub.shape[-1] != 3:
                    raise ValueError(f"camera '{key}': expected HxWx3 uint8 images, got shape {sub.shape}")
                images[key] = tuple(int(x) for x in sub.shape)
            elif isinstance(sub, gym.spaces.Box):
                state_keys.append(key)
                state_dim += int(np.prod(sub.shape))
            else:
                raise ValueError(f"observation key '{key}': unsupported space {sub}")
        return ObsSpec(state_dim=state_dim, image_shapes=images, state_keys=tuple(state_keys))
    raise ValueError(f"unsupported observation space {space}: use a Box or a Dict of Boxes")


def flatten_obs(spec: ObsSpec, obs) -> dict[str, np.ndarray]:
    """One environment observation -> {"state": float32[state_dim], camera: uint8[H,W,3]}."""
    if not isinstance(obs, dict):
        return {"state": np.asarray(obs, np.float32).reshape(-1)}
    parts = [np.asarray(obs[k], np.float32).reshape(-1) for k in spec.state_keys]
    out = {"state": np.concatenate(parts) if parts else np.zeros(0, np.float32)}
    for key in spec.image_keys:
        out[key] = np.asarray(obs[key], np.uint8)
    return out
