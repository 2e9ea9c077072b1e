"""Training a success classifier: episode-wise splits, the fit, metrics and the false-positive-rate threshold.

Frames of one episode are strongly correlated, so the train / validation / test split is by episode.
The decision threshold is chosen on the validation split for a target false-positive rate (a false
success ends an episode with a reward it did not earn, which costs more than a missed one); the test
split, never seen while fitting or choosing, reports the figures.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from robot_rl.reward.classifier import SuccessClassifier, stack_cameras


def threshold_for_fpr(scores: np.ndarray, labels: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold (predict success when score >= threshold) whose false-positive rate on
    these negatives is <= target_fpr."""
    scores, labels = np.asarray(scores, np.float32), np.asarray(labels).astype(bool)
    if not 0.0 <= target_fpr < 1.0:
        raise ValueError(f"target_fpr must be in [0, 1), got {target_fpr}.")
    negatives = np.sort(scores[~labels])[::-1]
    if len(negatives) == 0:
        raise ValueError("the validation split has no negative frames, so no false-positive rate can be measured: "
                         "record failed and partial episodes too.")
    allowed = math.floor(target_fpr * len(negatives) + 1e-9)  # false positives the target permits
    if allowed >= len(negatives):
        return float(negatives[-1])
    # Just above the (allowed+1)-th highest negative, in float32 (what the model and ONNX output), so
    # that the comparison gives the same answer in float32 and float64.
    return float(np.nextafter(negatives[allowed], np.float32(np.inf)))


def binary_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    predicted = np.asarray(scores, np.float64) >= threshold
    labels = np.asarray(labels).astype(bool)
    tp, fp = int(np.sum(predicted & labels)), int(np.sum(predicted & ~labels))
    fn, tn = int(np.sum(~predicted & labels)), int(np.sum(~predicted & ~labels))
    return {
        "accuracy": (tp + tn) / max(len(labels), 1),
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "positives": tp + fn, "negatives": fp + tn, "threshold": float(threshold),
    }


def split_episodes(episode_ids: np.ndarray, fractions=(0.7, 0.15, 0.15), seed: int = 0) -> list[np.ndarray]:
    """Frame indices of the train / validation / test episodes."""
    episodes = np.unique(episode_ids)
    np.random.default_rng(seed).shuffle(episodes)
    cuts = np.cumsum(np.round(np.asarray(fractions[:-1]) * len(episodes)).astype(int))
    return [np.flatnonzero(np.isin(episode_ids, part)) for part in np.split(episodes, cuts)]


@dataclass
class TrainSettings:
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    target_fpr: float = 0.01
    seed: int = 0
    max_seconds: float = 60.0  # stops early on a slow machine; the figures report what it reached
    shift_px: int = 3  # DrQ-style random shift (Kostrikov et al. 2020): small data, many lighting draws


def random_shift(images: torch.Tensor, shift_px: int, rng: np.random.Generator) -> torch.Tensor:
    """Each image moved by up to shift_px pixels, edges replicated; uint8 (N, H, W, C) in and out."""
    if shift_px <= 0:
        return images
    n, h, w, _ = images.shape
    padded = nn.functional.pad(images.permute(0, 3, 1, 2).float(), (shift_px,) * 4, mode="replicate")
    offsets = rng.integers(0, 2 * shift_px + 1, (n, 2))
    crops = [padded[i, :, y:y + h, x:x + w] for i, (y, x) in enumerate(offsets)]
    return torch.stack(crops).permute(0, 2, 3, 1).to(torch.uint8)


def scores_of(model: SuccessClassifier, images: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return np.concatenate([torch.sigmoid(model(images[i:i + batch_size])).numpy()
                               for i in range(0, len(images), batch_size)])


def train_classifier(data: dict, cameras, settings: TrainSettings | None = None,
                     model: SuccessClassifier | None = None) -> tuple[SuccessClassifier, float, dict]:
    """(model, threshold, report) from labelled frames (see `robot_rl.reward.dataset`)."""
    settings = settings or TrainSettings()
    cameras = tuple(cameras)
    torch.manual_seed(settings.seed)
    images = stack_cameras(data, cameras)
    labels = torch.as_tensor(np.asarray(data["label"]), dtype=torch.float32)
    train_idx, val_idx, test_idx = split_episodes(np.asarray(data["episode"]), seed=settings.seed)
    model = model or SuccessClassifier(cameras, images.shape[1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    steps_per_epoch = math.ceil(len(train_idx) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, settings.lr, total_steps=settings.epochs * steps_per_epoch)
    # Classes are unbalanced (most frames are not successes); weight positives to even them out.
    positive_share = float(labels[train_idx].mean().clamp(0.05, 0.95))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - positive_share) / positive_share))
    rng = np.random.default_rng(settings.seed)
    start, epochs_run = time.monotonic(), 0
    for _ in range(settings.epochs):
        model.train()
        for batch in np.array_split(rng.permutation(train_idx), steps_per_epoch):
            loss = loss_fn(model(random_shift(images[batch], settings.shift_px, rng)), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        epochs_run += 1
        if time.monotonic() - start > settings.max_seconds:
            break
    val_scores = scores_of(model, images[val_idx])
    threshold = threshold_for_fpr(val_scores, labels[val_idx].numpy(), settings.target_fpr)
    report = {
        "train_frames": len(train_idx), "epochs": epochs_run, "train_s": round(time.monotonic() - start, 1),
        "target_fpr": settings.target_fpr,
        "validation": binary_metrics(val_scores, labels[val_idx].numpy(), threshold),
        "test": binary_metrics(scores_of(model, images[test_idx]), labels[test_idx].numpy(), threshold),
    }
    return model, threshold, report
