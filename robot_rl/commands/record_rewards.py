"""``robot-rl record-rewards CONFIG``: teleoperate a pixel task while holding a button on the success frames.

Every step's camera frames are kept with the button as their label (held: success), in the
reward-classifier dataset format (`robot_rl/reward/dataset.py`: `<camera>` uint8 (N, H, W, 3),
`label`, `episode`, `lift_m`, `script`, `meta`), appended to ``RUN/reward/frames.npz`` where
`robot-rl train-reward RUN` looks for it. Frames recorded here have `script` = `TELEOP_SCRIPT` and,
off pick-cube, `lift_m` = NaN. In simulation `--device scripted` lets the task's expert drive and a
simulated person hold the button while the cube is truly lifted (after a reaction delay).
Episodes run to their time limit, not to the first success: the frames after it are the positives.
``--bag DIR`` also writes the steps (with the label on /robot_rl/success) as a ROS 2 bag (MCAP).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from robot_rl.commands.record_demos import DEVICES, BagRecorder, make_teleop_device, pace, teleop_action

TELEOP_SCRIPT = 255  # `script` value of teleoperated frames (the sim collector's scripts are 0..len(SCRIPTS)-1)
SUCCESS_BUTTON = 2  # xpad X, the reward labelling default of robot_rl/reward/config.py


class SimulatedLabeller:
    """A person watching pick-cube: holds the success button while the cube is lifted, `reaction_steps` late."""

    def __init__(self, button: int, reaction_steps: int = 1):
        self.button, self.reaction_steps, self.history = button, reaction_steps, []

    def __call__(self, env) -> tuple[bool, ...]:
        from robot_rl.reward.dataset import cube_lifted

        if env.unwrapped.elapsed_steps == 0:
            self.history = []
        self.history.append(cube_lifted(env))
        seen = self.history[-1 - self.reaction_steps] if len(self.history) > self.reaction_steps else False
        return tuple(i == self.button and seen for i in range(self.button + 1))


def lift_above_rest_m(env) -> float:
    unwrapped = env.unwrapped
    if hasattr(unwrapped, "cube_pos_m") and hasattr(unwrapped, "cube_rest_z_m"):
        return float(unwrapped.cube_pos_m[2] - unwrapped.cube_rest_z_m)
    return float("nan")


def append_frames(path: Path, new: dict[str, np.ndarray], cameras: list[str]) -> dict:
    """Add episodes to an existing dataset file (episode ids continue), or start one."""
    from robot_rl.reward.dataset import load_frames, save_frames

    if path.is_file():
        old, meta = load_frames(path)
        if meta["cameras"] != cameras or old[cameras[0]].shape[1:] != new[cameras[0]].shape[1:]:
            raise ValueError(f"{path} holds {meta['cameras']} frames of size {meta['image_size']}, these are {cameras} "
                             f"of size {new[cameras[0]].shape[1]}: pass another --dataset or --run-dir.")
        new = {**new, "episode": new["episode"] + int(old["episode"].max()) + 1}
        new = {k: np.concatenate([old[k], new[k]]) for k in new}
    save_frames(path, new, cameras)
    return new


def record_rewards(config_path, episodes: int, run_dir=None, device_name: str = "scripted",
                   device_path: str | None = None, success_button: int = SUCCESS_BUTTON, noise_std: float = 0.0,
                   dataset: str | Path | None = None, bag: str | Path | None = None, log=print) -> dict:
    from robot_rl.envs import make_env
    from robot_rl.intervention import make_teleop_adapter
    from robot_rl.session import prepare_run
    from robot_rl.spaces import flatten_obs, obs_spec_from_space

    run, config = prepare_run(config_path, run_dir)
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    cameras = list(spec.image_keys)
    if not cameras:
        env.close()
        raise ValueError(f"{config.env} has no camera observation; a reward classifier needs frames: use a pixel "
                         "task (e.g. robot_rl/PickCubePixels-v0).")
    adapter = make_teleop_adapter(env)
    labeller = SimulatedLabeller(success_button) if device_name == "scripted" else None
    device = make_teleop_device(device_name, env, adapter, device_path, noise_std, config.seed, labeller)
    scripted = device_name == "scripted"
    path = Path(dataset) if dataset else run.root / "reward" / "frames.npz"
    recorder = BagRecorder(bag, cameras) if bag else None
    frames = {c: [] for c in cameras}
    labels, episode_ids, lift_m = [], [], []
    device.connect()
    try:
        for episode in range(episodes):
            raw, _ = env.reset(seed=config.seed + 900_000 + episode)
            previous, next_step_s = adapter.safe_action(np.array([0, 0, 0, -1.0])), time.monotonic()
            truncated = False
            while not truncated:
                next_step_s = pace(next_step_s, None if scripted else adapter.control_period_s)
                reading = device.read()
                action = teleop_action(reading, previous, adapter)
                # success does not end a labelling episode: the held-cube frames after it are the positives
                raw, reward, _, truncated, _ = env.step(action)
                previous = action
                label = success_button < len(reading.buttons) and bool(reading.buttons[success_button])
                obs = flatten_obs(spec, raw)
                for camera in cameras:
                    frames[camera].append(obs[camera])
                labels.append(label)
                episode_ids.append(episode)
                lift_m.append(lift_above_rest_m(env))
                if recorder is not None:
                    recorder.write_step(obs, action, reward, label, reading)
            log(f"episode {episode + 1}/{episodes}: {sum(labels[-(env.unwrapped.elapsed_steps):])} success frames")
    finally:
        device.close()
        env.close()
        if recorder is not None:
            recorder.close()
    new = {**{c: np.stack(frames[c]).astype(np.uint8) for c in cameras}, "label": np.asarray(labels, np.uint8),
           "episode": np.asarray(episode_ids, np.int32), "lift_m": np.asarray(lift_m, np.float32),
           "script": np.full(len(labels), TELEOP_SCRIPT, np.uint8)}
    total = append_frames(path, new, cameras)
    return {"dataset": str(path), "frames": len(labels), "success_frames": int(np.sum(labels)),
            "dataset_frames": int(len(total["label"])), "bag": str(bag) if bag else None}


def run(args) -> int:
    from drivers.errors import DeviceError
    from robot_rl.config import ConfigError

    try:
        summary = record_rewards(args.config, args.episodes, args.run_dir, device_name=args.device,
                                 device_path=args.device_path, success_button=args.success_button,
                                 noise_std=args.noise, dataset=args.dataset, bag=args.bag)
    except (ConfigError, DeviceError, FileExistsError, ValueError) as err:
        print(f"record-rewards: {err}")
        return 2
    print(json.dumps(summary))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("record-rewards", help="teleoperate while holding a button on success frames "
                                                   "(labelled frames for `robot-rl train-reward`)")
    parser.add_argument("config", help="a pixel session file, e.g. launch/sim_pick_cube_pixels.yaml")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--run-dir", help="run directory (default runs/<name>); frames go to RUN/reward/frames.npz")
    parser.add_argument("--dataset", help="append to this .npz instead of RUN/reward/frames.npz")
    parser.add_argument("--device", choices=DEVICES, default="gamepad",
                        help="teleop device with buttons; 'scripted': the task's expert drives and labels (simulation)")
    parser.add_argument("--device-path", help="gamepad/keyboard event file or SpaceMouse HID path (default: autodetect)")
    parser.add_argument("--success-button", type=int, default=SUCCESS_BUTTON, help="held: this frame is a success")
    parser.add_argument("--noise", type=float, default=0.0, help="scripted device only: Gaussian noise on its moves")
    parser.add_argument("--bag", help="also write every step to this ROS 2 bag (a new folder, MCAP storage)")
    parser.set_defaults(func=run)
