"""The deployment spec embedded in every export: what a runner needs to know besides the weights.

``build_export_spec`` is shared by ``robot-rl train`` (its final export) and ``robot-rl export``;
``layout_mismatches`` is the reload-safety check a runner applies before it drives a robot.
"""

from __future__ import annotations

from pathlib import Path


def _layout(layout) -> list[list] | None:
    """[(name, size), ...] as JSON-friendly [[name, size], ...]; None when the env does not name its parts."""
    return None if layout is None else [[str(name), int(size)] for name, size in layout]


def build_export_spec(env, obs_spec, *, control_hz: float, env_id: str, env_kwargs: dict, session: str,
                      training_run: str | Path, policy_version: int = 0, learner_updates: int = 0) -> dict:
    """Everything but the content hash (added by ``export_onnx``) for an actor acting in ``env``."""
    space = env.action_space
    unwrapped = env.unwrapped
    return {
        "obs_spec": obs_spec.to_dict(),
        "obs_layout": _layout(getattr(unwrapped, "obs_layout", None)),
        "action_layout": _layout(getattr(unwrapped, "action_layout", None)),
        "action_dim": int(space.shape[0]),
        "action_low": [float(x) for x in space.low.reshape(-1)],
        "action_high": [float(x) for x in space.high.reshape(-1)],
        # the actor consumes raw observations; its action rescaling to [low, high] is inside the graph
        "normalization": {"state_mean": None, "state_std": None, "note": "observations enter unnormalized"},
        "control_hz": float(control_hz), "env": env_id, "env_kwargs": dict(env_kwargs),
        "policy_version": int(policy_version), "learner_updates": int(learner_updates),
        "training_run": str(Path(training_run).resolve()), "session": session,
    }


def layout_mismatches(spec: dict, expected: dict) -> list[str]:
    """Differences between an export's spec and what a robot provides, one sentence each (empty: compatible).

    ``expected`` holds ``obs_spec`` (dict form), ``obs_layout``, ``action_layout`` and ``action_dim``
    (layouts may be None when the robot does not name its parts; then only sizes are compared).
    """
    problems = []
    got, want = spec["obs_spec"], expected["obs_spec"]
    if int(got["state_dim"]) != int(want["state_dim"]):
        problems.append(f"state size: export {got['state_dim']}, robot {want['state_dim']}")
    got_images = {k: list(v) for k, v in got["image_shapes"].items()}
    want_images = {k: list(v) for k, v in want["image_shapes"].items()}
    if got_images != want_images:
        problems.append(f"cameras: export {got_images or 'none'}, robot {want_images or 'none'}")
    for key in ("obs_layout", "action_layout"):
        ours, theirs = spec.get(key), expected.get(key)
        if ours is not None and theirs is not None and [list(p) for p in ours] != [list(p) for p in theirs]:
            problems.append(f"{key}: export {[tuple(p) for p in ours]}, robot {[tuple(p) for p in theirs]}")
    if action_dim(spec) != int(expected["action_dim"]):
        problems.append(f"action size: export {action_dim(spec)}, robot {expected['action_dim']}")
    for key in ("action_low", "action_high"):
        if expected.get(key) is not None and spec.get(key) is not None and len(spec[key]) == len(expected[key]):
            if any(abs(a - b) > 1e-6 for a, b in zip(spec[key], expected[key])):
                problems.append(f"{key}: export {spec[key]}, robot {expected[key]}")
    return problems


def action_dim(spec: dict) -> int:
    """Exports written before ``action_dim`` was part of the spec still carry the action bounds."""
    return int(spec["action_dim"]) if "action_dim" in spec else len(spec["action_low"])
