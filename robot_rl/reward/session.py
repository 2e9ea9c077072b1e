"""The reward classifier in a training session: its checkpoint ready before anything starts, the
env wrapped (`wrap_env`, called by `robot_rl.envs.make_env`), and the report's figures.

Preparation (`prepare_reward`, run by `robot_rl.session.prepare_run`): a relative checkpoint path is
resolved against the run directory and stored absolute in RUN/config.yaml (the actor reads that
file); when the file is missing and `train_if_missing` is set, the session trains a pick-cube
classifier there first (simulated frames with randomized lights, colours and camera pose, as
`robot-rl train-reward` does), else it stops with what to run.
"""

from __future__ import annotations

import json
from pathlib import Path

from robot_rl.reward.config import RewardConfig

# train-reward's mix plus hard negatives: a policy rewarded by a classifier seeks out its false
# positives, and a hand hovering near the cube was the first one found (see dataset.EXTRA_SCRIPTS).
SCRIPT_MIX = {"full": 0.3, "low": 0.2, "drop": 0.15, "miss": 0.1, "hover": 0.25}


def uses_classifier(reward: RewardConfig | None) -> bool:
    return reward is not None and reward.source == "classifier"


def checkpoint_path(reward: RewardConfig, run_root: Path) -> Path:
    path = Path(reward.checkpoint).expanduser()
    return path if path.is_absolute() else (Path(run_root) / path).resolve()


def train_session_classifier(reward: RewardConfig, path: Path, seed: int, log=print) -> dict:
    """A pick-cube classifier for the session's cameras and image size, written to `path` (+ .onnx, .json)."""
    import torch

    from robot_rl.reward.classifier import export_classifier_onnx, save_classifier
    from robot_rl.reward.dataset import collect_pick_cube_frames, save_frames
    from robot_rl.reward.training import TrainSettings, train_classifier

    torch.set_num_threads(1)
    cameras, image_size = tuple(reward.cameras or ("front",)), reward.image_size or 64
    log(f"reward: no classifier at {path}; recording {reward.train_episodes} simulated episodes and training one")
    data = collect_pick_cube_frames(reward.train_episodes, image_size, cameras, seed=seed, script_weights=SCRIPT_MIX)
    save_frames(path.parent / "frames.npz", data, cameras)
    # The epoch count, not the clock, ends the fit: a busy machine gets the same classifier, only later.
    settings = TrainSettings(target_fpr=reward.target_fpr, seed=seed, max_seconds=900)
    model, threshold, report = train_classifier(data, cameras, settings)
    save_classifier(path, model, threshold, report)
    export_classifier_onnx(model, path.with_suffix(".onnx"), threshold)
    summary = {"checkpoint": str(path), "cameras": list(cameras), "image_size": image_size, "threshold": threshold, **report}
    path.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    validation = report["validation"]
    log(f"reward: classifier {path.name}: validation accuracy {validation['accuracy']:.3f}, "
        f"false-positive rate {validation['false_positive_rate']:.4f} at threshold {threshold:.3f}")
    return summary


def prepare_reward(config, run_root: Path, log=print):
    """The session config with its classifier checkpoint absolute and present (see the module docstring)."""
    reward = config.reward
    if not uses_classifier(reward):
        return config
    path = checkpoint_path(reward, run_root)
    if not path.is_file():
        if not reward.train_if_missing:
            raise FileNotFoundError(f"reward.checkpoint {path} does not exist: train one with `robot-rl train-reward "
                                    f"{run_root}` or set reward.train_if_missing: true.")
        train_session_classifier(reward, path, config.seed, log)
    return config.model_copy(update={"reward": reward.model_copy(update={"checkpoint": str(path)})})


def wrap_env(env, reward: RewardConfig, run_root: Path | None = None):
    """`env` with the classifier's reward, after checking the checkpoint against the session's cameras and image size."""
    from robot_rl.reward.frames import ClassifierFrames, session_image_settings
    from robot_rl.reward.runner import RewardClassifierRunner
    from robot_rl.reward.wrapper import ClassifierReward

    cameras, image_size = session_image_settings(env, reward.cameras, reward.image_size)
    path = checkpoint_path(reward, run_root or Path.cwd())
    runner = RewardClassifierRunner.from_checkpoint(path, image_size, cameras)  # refuses a mismatching checkpoint
    if reward.threshold is not None:
        runner.threshold = reward.threshold
    frames = device = None
    human = reward.human_override
    try:
        frames = ClassifierFrames(env, runner.cameras, image_size)
        if human is not None:
            device = _override_device(human)
            device.connect()
    except BaseException:
        runner.close()
        if frames is not None:
            frames.close()
        raise
    return ClassifierReward(env, runner, frames, reward.verdict_deadline_ms, reward.terminate_on_success, device,
                            human.success_button if human else 2, human.failure_button if human else None,
                            reward.success_frames)


def _override_device(human):
    if human.device == "gamepad":
        from drivers.teleop.gamepad import Gamepad

        return Gamepad(human.path)
    from drivers.teleop.spacemouse import SpaceMouse

    return SpaceMouse(human.path)


def training_summary(episode_records: list[dict]) -> dict | None:
    """The classifier's record over the actor's training episodes (RUN/logs/task_episodes.jsonl)."""
    records = [r for r in episode_records if "classifier_disagreements" in r]
    if not records:
        return None
    total = {k: sum(int(r.get(k, 0)) for r in records) for k in (
        "classifier_disagreements", "classifier_false_positives", "classifier_false_negatives", "classifier_late_verdicts")}
    return {"training_episodes": len(records), **total}
