"""``robot-rl train-reward RUN``: train the success classifier that gives a pixels session its reward.

Without ``--dataset`` it records labelled frames in simulation (pick-cube, randomized lights and
colours) into ``RUN/reward/frames.npz`` first, and reuses that file next time. It writes
``RUN/reward/classifier_vN.pt`` (torch, tensors only), ``classifier_vN.onnx`` and
``classifier_vN.json`` (validation and test figures, threshold), N counting up from 1.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

DEFAULT_IMAGE_SIZE = 64
DEFAULT_CAMERAS = ("front",)


def next_version(folder: Path) -> int:
    versions = [int(m.group(1)) for p in folder.glob("classifier_v*.pt") if (m := re.fullmatch(r"classifier_v(\d+)\.pt", p.name))]
    return max(versions, default=0) + 1


def session_image_settings(run_root: Path) -> tuple[int, tuple[str, ...]]:
    """The run's image size and cameras when it has a session file, else this command's defaults."""
    config_path = run_root / "config.yaml"
    if not config_path.is_file():
        return DEFAULT_IMAGE_SIZE, DEFAULT_CAMERAS
    from robot_rl.config import load_session

    config = load_session(config_path)
    kwargs = config.env_kwargs or {}
    cameras = tuple(kwargs.get("cameras", ("front", "wrist")))[:1]
    image_size = int(kwargs.get("image_size", DEFAULT_IMAGE_SIZE))
    if config.reward is not None:  # a classifier-reward session says what its classifier sees
        cameras = tuple(config.reward.cameras) if config.reward.cameras else cameras
        image_size = config.reward.image_size or image_size
    return image_size, cameras


def train_reward(run_dir: str | Path, dataset: str | Path | None = None, target_fpr: float = 0.01,
                 episodes: int = 160, epochs: int = 12, encoder: str | None = None, seed: int = 0) -> dict:
    import torch

    from robot_rl.reward.classifier import SuccessClassifier, export_classifier_onnx, load_pretrained_encoder, save_classifier
    from robot_rl.reward.dataset import collect_pick_cube_frames, load_frames, save_frames
    from robot_rl.reward.training import TrainSettings, train_classifier

    torch.set_num_threads(1)
    root = Path(run_dir)
    folder = root / "reward"
    image_size, cameras = session_image_settings(root)
    if dataset is None:
        dataset = folder / "frames.npz"
        if not dataset.is_file():
            save_frames(dataset, collect_pick_cube_frames(episodes, image_size, cameras, seed=seed), cameras)
    data, meta = load_frames(dataset)
    cameras = tuple(meta["cameras"])
    model = SuccessClassifier(cameras, meta["image_size"])
    if encoder is not None:
        load_pretrained_encoder(model, encoder)
    model, threshold, report = train_classifier(data, cameras, TrainSettings(epochs=epochs, target_fpr=target_fpr, seed=seed), model)
    version = next_version(folder)
    checkpoint = save_classifier(folder / f"classifier_v{version}.pt", model, threshold, report, encoder)
    onnx_path = export_classifier_onnx(model, folder / f"classifier_v{version}.onnx", threshold)
    summary = {"version": version, "checkpoint": str(checkpoint), "onnx": str(onnx_path), "dataset": str(dataset),
               "cameras": list(cameras), "image_size": meta["image_size"], "threshold": threshold, **report}
    (folder / f"classifier_v{version}.json").write_text(json.dumps(summary, indent=2))
    return summary


def run(args) -> int:
    try:
        summary = train_reward(args.run, args.dataset, args.target_fpr, args.episodes, args.epochs, args.encoder, args.seed)
    except (FileNotFoundError, ValueError) as exc:
        print(f"robot-rl train-reward: {exc}", file=sys.stderr)
        return 2
    validation, test = summary["validation"], summary["test"]
    print(json.dumps({"checkpoint": summary["checkpoint"], "threshold": round(summary["threshold"], 4),
                      **{f"val_{k}": round(validation[k], 4) for k in ("accuracy", "precision", "recall", "false_positive_rate")},
                      **{f"test_{k}": round(test[k], 4) for k in ("accuracy", "false_positive_rate")}}))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("train-reward", help="train the image success classifier (reward) for a run")
    parser.add_argument("run", help="run directory; frames and classifier versions go to RUN/reward/")
    parser.add_argument("--dataset", help="labelled frames (.npz); default: RUN/reward/frames.npz, recorded in sim if missing")
    parser.add_argument("--target-fpr", type=float, default=0.01, help="false-positive rate the threshold is chosen for")
    parser.add_argument("--episodes", type=int, default=160, help="sim episodes to record when there is no dataset")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--encoder", help="local file with pretrained features.* tensors to start from")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)
