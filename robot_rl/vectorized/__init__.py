"""In-process vectorized off-policy training (TD3, asymmetric critic) for fast simulators.

A session file with ``trainer: vectorized`` is trained by ``train_vectorized`` instead of the
learner/actor processes of ``robot_rl.session``.
"""

from __future__ import annotations

from pathlib import Path

from robot_rl.config import session_trainer


def is_vectorized_session(config_path: str | Path) -> bool:
    """True when the session file asks for this trainer (top-level ``trainer: vectorized``)."""
    return session_trainer(config_path) == "vectorized"


def train_vectorized(*args, **kwargs) -> dict:
    from robot_rl.vectorized.trainer import train_vectorized as train

    return train(*args, **kwargs)


__all__ = ["is_vectorized_session", "train_vectorized"]
