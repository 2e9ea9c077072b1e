"""Labelled camera frames for a success classifier: a pick-cube collector (simulation) and the .npz format.

The collector rolls out the scripted expert with noise under `VisualRandomization` (lights, cube and
table colour, camera jitter redrawn each episode) and labels each frame with the simulator's true
success: cube >= `lift_success_m` above its rest height and in the hand. Each episode follows one of
four scripts so that the negatives include the hard cases, not only "cube on the table":
`full` (lift and hold), `low` (grasp and hold below the success height), `drop` (lift, then let go)
and `miss` (noisy wandering, no grasp).

File format (`save_frames`/`load_frames`): one .npz, no pickle: `<camera>` uint8 (N, H, W, 3) per
camera, `label` uint8 (N,), `episode` int32 (N,), `lift_m` float32 (N,) (cube height above rest),
`script` uint8 (N,) (index into SCRIPTS), and `meta` (a JSON string: image size, cameras).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SCRIPTS = ("full", "low", "drop", "miss")
SCRIPT_WEIGHTS = (0.35, 0.3, 0.2, 0.15)
# Drawn only when asked for (`script_weights`): `hover` holds the open or closed hand at random points
# around and above the cube without grasping it, the states a policy rewarded by the classifier finds
# first (a hand high near the cube, hiding it from the front camera, scored 0.95+ with the four above).
EXTRA_SCRIPTS = ("hover",)
HOVER_OFFSET_M = (0.07, 0.07, 0.14)  # |dx|, |dy| and height above the cube of the hover points
HOVER_HOLD_STEPS = 8
# Held-below-success heights stop this far short of the success line, so a label is not decided by
# a millimetre a 64-pixel camera cannot see.
LOW_HOLD_MARGIN_M = 0.01


def make_pick_cube_env(image_size: int, cameras, seed: int, material_colour_jitter: float = 0.4,
                       max_episode_steps: int = 30):
    import gymnasium as gym

    import sim2real  # noqa: F401  (registers the env ids)
    from sim2real.randomization import VisualRandomization

    env = gym.make("robot_rl/PickCubePixels-v0", image_size=image_size, cameras=tuple(cameras),
                   max_episode_steps=max_episode_steps)
    # A wide colour jitter: the cube must be recognised by shape and place, not by its nominal red.
    return VisualRandomization(env, material_colour_jitter=material_colour_jitter, seed=seed)


def cube_lifted(env) -> bool:
    """The env's own success test, from its true state."""
    from sim2real.pick_cube.env import HELD_DISTANCE_M

    env = env.unwrapped
    cube, ee = env.cube_pos_m, env.ee_pos_m
    return bool(cube[2] - env.cube_rest_z_m >= env.lift_success_m and np.linalg.norm(cube - ee) < HELD_DISTANCE_M)


def collect_pick_cube_frames(episodes: int, image_size: int = 64, cameras=("front",), seed: int = 0,
                             action_noise_std: float = 0.2,
                             script_weights: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Frames from `episodes` randomized episodes (see the module docstring); every step's frame is kept.

    `script_weights` ({script: weight}, from SCRIPTS + EXTRA_SCRIPTS) replaces the default mix."""
    from sim2real.pick_cube.expert import PickCubeExpert

    cameras = tuple(cameras)
    env = make_pick_cube_env(image_size, cameras, seed)
    expert = PickCubeExpert(env, action_noise_std=action_noise_std, seed=seed)
    rng = np.random.default_rng(seed)
    mix = script_weights or dict(zip(SCRIPTS, SCRIPT_WEIGHTS))
    unknown = sorted(set(mix) - set(SCRIPTS + EXTRA_SCRIPTS))
    if unknown:
        raise ValueError(f"unknown scripts {unknown}: choose from {list(SCRIPTS + EXTRA_SCRIPTS)}.")
    names, weights = tuple(mix), np.asarray(list(mix.values()), float) / sum(mix.values())
    frames = {c: [] for c in cameras}
    labels, episode_ids, lift_m, scripts = [], [], [], []
    unwrapped = env.unwrapped
    try:
        for episode in range(episodes):
            script = names[rng.choice(len(names), p=weights)]
            hold_height_m = rng.uniform(0.0, unwrapped.lift_success_m - LOW_HOLD_MARGIN_M)
            drop_after = int(rng.integers(1, 8))
            obs, _ = env.reset(seed=seed * 100_003 + episode)
            lifted_steps = 0
            for step in range(unwrapped.max_episode_steps):
                action = expert.act()
                if script == "hover":
                    if step % HOVER_HOLD_STEPS == 0:  # a new point near the cube, hand open or closed
                        hover_m = unwrapped.cube_pos_m + rng.uniform((-1, -1, 0), 1) * HOVER_OFFSET_M
                        grip = rng.choice((-1.0, 1.0))
                    delta = (hover_m - unwrapped.ee_pos_m) / unwrapped.max_step_m + rng.normal(0.0, action_noise_std, 3)
                    action = np.append(np.clip(delta, -1.0, 1.0), grip).astype(np.float32)
                if script == "low" and expert.phase == "lift":
                    # Servo the cube to a height below the success line and hold it there.
                    error_m = unwrapped.cube_rest_z_m + hold_height_m - unwrapped.cube_pos_m[2]
                    action[2] = np.clip(error_m / unwrapped.max_step_m, -1.0, 1.0)
                if script == "drop" and lifted_steps >= drop_after:
                    action[3] = -1.0
                if script == "miss":
                    action = rng.uniform(-1.0, 1.0, 4).astype(np.float32)
                    action[3] = -1.0
                obs, _, _, truncated, _ = env.step(action)  # success does not stop the episode: its frames are the positives
                lifted = cube_lifted(env)
                lifted_steps += int(lifted or lifted_steps > 0)
                for c in cameras:
                    frames[c].append(obs[c])
                labels.append(lifted)
                episode_ids.append(episode)
                lift_m.append(unwrapped.cube_pos_m[2] - unwrapped.cube_rest_z_m)
                scripts.append((SCRIPTS + EXTRA_SCRIPTS).index(script))
                if truncated:
                    break
    finally:
        env.close()
    data = {c: np.stack(frames[c]) for c in cameras}
    data["label"] = np.asarray(labels, np.uint8)
    data["episode"] = np.asarray(episode_ids, np.int32)
    data["lift_m"] = np.asarray(lift_m, np.float32)
    data["script"] = np.asarray(scripts, np.uint8)  # index into SCRIPTS + EXTRA_SCRIPTS
    return data


def save_frames(path: str | Path, data: dict[str, np.ndarray], cameras) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cameras = list(cameras)
    meta = {"cameras": cameras, "image_size": int(data[cameras[0]].shape[1]), "frames": int(len(data["label"]))}
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **data)
    return path


def load_frames(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """(arrays, meta); a file that is not such a dataset gets one sentence saying so."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: record one with `robot-rl train-reward RUN` (it collects "
                                "frames in simulation) or pass --dataset with an existing .npz.")
    with np.load(path, allow_pickle=False) as archive:
        if "meta" not in archive or "label" not in archive:
            raise ValueError(f"{path} is not a reward-classifier dataset (no 'meta'/'label' arrays): pass one "
                             "written by robot_rl.reward.dataset.save_frames.")
        meta = json.loads(str(archive["meta"]))
        data = {k: archive[k] for k in archive.files if k != "meta"}
    return data, meta
