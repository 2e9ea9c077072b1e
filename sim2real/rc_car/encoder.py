"""A pretrained, frozen camera encoder for the RC car (FastRLAP's recipe: the image encoder is
pretrained offline and kept frozen during online RL, which makes many updates per second affordable).

The encoder is a small CNN that maps the car's 64×64 camera frame to ``LABEL_NAMES``: privileged
track-relative features the simulator knows exactly (lateral offset as a share of the half width,
and the centre line ahead in the car frame at ``LOOKAHEAD_M``, the same features the state-only
task observes). It is pretrained by regression on random car poses of the tracks *other than* the
default one, so the default track stays unseen; its output is the embedding the policy sees.

Weights are safetensors (no pickle) with a metadata header; `load_encoder` checks every tensor
shape against the architecture and refuses a mismatch with what to do.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim2real.rc_car.camera import GroundCamera
from sim2real.rc_car.env import LOOKAHEAD_M
from sim2real.rc_car.params import CameraParams, CarParams
from sim2real.rc_car.track import DEFAULT_TRACK, TRACKS, Track, get_track

PRETRAIN_TRACKS = tuple(sorted(name for name in TRACKS if name != DEFAULT_TRACK))  # the default track stays unseen
LABEL_NAMES = ("lateral_share", *(f"ahead_{d:g}m_{axis}" for d in LOOKAHEAD_M for axis in ("x", "y")))
EMBED_DIM = len(LABEL_NAMES)
FORMAT = "robot_rl.rc_car_encoder.v1"
MAX_HEADING_ERROR_RAD = np.pi / 2  # poses after a recovery manoeuvre point well off the centre line


class EncoderError(RuntimeError):
    """A camera-encoder file that cannot be used; the message says what to do."""


def track_labels(track: Track, x_m, y_m, yaw_rad, wall_m: float) -> np.ndarray:
    """(N, EMBED_DIM) float32: lateral offset / wall distance, centre line ahead in the car frame / 4 m."""
    xy = np.stack([np.asarray(x_m, float), np.asarray(y_m, float)], axis=1)
    _, s, lateral = track.project(xy)
    ahead = track.centre_m[track.index_at(s[:, None] + np.asarray(LOOKAHEAD_M))]  # (N, K, 2)
    d = ahead - xy[:, None, :]
    c, sn = np.cos(yaw_rad)[:, None], np.sin(yaw_rad)[:, None]
    body = np.stack([c * d[..., 0] + sn * d[..., 1], -sn * d[..., 0] + c * d[..., 1]], axis=-1)
    return np.concatenate([(lateral / wall_m)[:, None], body.reshape(len(xy), -1) / 4.0], axis=1).astype(np.float32)


def pose_dataset(tracks, samples_per_track: int, image_size: int = 64, seed: int = 0,
                 car: CarParams = CarParams()) -> tuple[np.ndarray, np.ndarray]:
    """Camera frames (N, H, W, 3) uint8 and labels (N, EMBED_DIM) at random poses on ``tracks``.

    The camera depends on the pose only, so random poses (anywhere between the walls, heading
    mostly along the track, a tail of large errors) cover what driving would, without driving.
    """
    rng = np.random.default_rng(seed)
    frames, labels = [], []
    for name in tracks:
        track = get_track(name)
        camera = GroundCamera(track, CameraParams(height_px=image_size, width_px=image_size))
        wall_m = track.half_width_m - car.half_width_m  # the dynamics keep the car's centre within this
        s = rng.uniform(0, track.length_m, samples_per_track)
        i = track.index_at(s)
        lateral = rng.uniform(-wall_m, wall_m, samples_per_track)
        error = np.where(rng.random(samples_per_track) < 0.8, rng.normal(0, 0.3, samples_per_track),
                         rng.uniform(-MAX_HEADING_ERROR_RAD, MAX_HEADING_ERROR_RAD, samples_per_track))
        x, y = (track.centre_m[i] + lateral[:, None] * track.normal[i]).T
        yaw = track.heading_rad[i] + error
        for chunk in np.array_split(np.arange(samples_per_track), max(1, samples_per_track // 512)):
            frames.append(camera.render(x[chunk], y[chunk], yaw[chunk]))
        labels.append(track_labels(track, x, y, yaw, wall_m))
    return np.concatenate(frames), np.concatenate(labels)


def build_encoder(image_size: int = 64):
    """uint8 (B, H, W, 3) → (B, EMBED_DIM) float32; four stride-2 convolutions and a small MLP head."""
    import torch
    from torch import nn

    class CameraEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.image_size = image_size
            self.conv = nn.Sequential(
                nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(),
            )
            flat = 32 * ((image_size + 15) // 16) ** 2
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Linear(128, EMBED_DIM))

        def forward(self, camera: torch.Tensor) -> torch.Tensor:
            x = camera.permute(0, 3, 1, 2).to(torch.float32) / 255.0 - 0.5
            return self.head(self.conv(x))

    return CameraEncoder()


@dataclass(frozen=True)
class PretrainSettings:
    samples_per_track: int = 12_000
    heldout_samples: int = 2_000
    epochs: int = 8  # the epoch count, not the clock, ends the fit: a busy machine gets the same encoder, later
    batch_size: int = 128
    learning_rate: float = 1e-3
    image_size: int = 64
    seed: int = 0


def evaluate_encoder(model, frames: np.ndarray, labels: np.ndarray) -> dict:
    """Mean absolute error per label (label units) and overall, on (frames, labels)."""
    import torch

    with torch.no_grad():
        predicted = torch.cat([model(torch.from_numpy(frames[i:i + 512])) for i in range(0, len(frames), 512)]).numpy()
    error = np.abs(predicted - labels)
    return {"mae": float(error.mean()), "mae_per_label": dict(zip(LABEL_NAMES, map(float, error.mean(axis=0)))),
            "label_std": float(labels.std(axis=0).mean())}


def pretrain_encoder(settings: PretrainSettings = PretrainSettings(), log=print):
    """Train on ``PRETRAIN_TRACKS``, evaluate on the unseen default track; returns (model, report)."""
    import torch

    torch.manual_seed(settings.seed)
    start = time.perf_counter()
    frames, labels = pose_dataset(PRETRAIN_TRACKS, settings.samples_per_track, settings.image_size, settings.seed)
    heldout = pose_dataset((DEFAULT_TRACK,), settings.heldout_samples, settings.image_size, settings.seed + 1)
    model = build_encoder(settings.image_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.epochs)
    rng = np.random.default_rng(settings.seed)
    frames_t, labels_t = torch.from_numpy(frames), torch.from_numpy(labels)
    for epoch in range(settings.epochs):
        order = torch.from_numpy(rng.permutation(len(frames)))
        for i in range(0, len(order), settings.batch_size):
            batch = order[i:i + settings.batch_size]
            loss = torch.nn.functional.smooth_l1_loss(model(frames_t[batch]), labels_t[batch], beta=0.05)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        schedule.step()
        log(f"encoder: epoch {epoch + 1}/{settings.epochs}, last batch loss {loss.item():.4f}")
    model.eval()
    report = {"train_tracks": list(PRETRAIN_TRACKS), "heldout_track": DEFAULT_TRACK, "samples": int(len(frames)),
              "epochs": settings.epochs, "heldout": evaluate_encoder(model, *heldout),
              "wall_s": round(time.perf_counter() - start, 1)}
    log(f"encoder: held-out track {DEFAULT_TRACK!r} mean abs error {report['heldout']['mae']:.4f} "
        f"(label std {report['heldout']['label_std']:.3f}) after {report['wall_s']} s")
    return model, report


def save_encoder(path: str | Path, model, report: dict | None = None) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": FORMAT, "image_size": str(model.image_size), "labels": json.dumps(LABEL_NAMES),
                "report": json.dumps(report or {})}
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata=metadata)
    tmp.replace(path)
    return path


def load_encoder(path: str | Path, image_size: int = 64):
    """The frozen encoder from ``path``, after checking its format, labels and every tensor shape."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = Path(path)
    if not path.is_file():
        raise EncoderError(f"camera encoder {path} does not exist: run a session with this launch file (it pretrains "
                           f"one) or `python -m sim2real.rc_car.encoder {path}`.")
    redo = f"delete {path} and let the session pretrain it again, or point encoder_path at a matching file."
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise EncoderError(f"{path} is not a safetensors file ({err}); {redo}") from None
    if metadata.get("format") != FORMAT or json.loads(metadata.get("labels", "[]")) != list(LABEL_NAMES):
        raise EncoderError(f"{path} is not an RC-car camera encoder with labels {list(LABEL_NAMES)}; {redo}")
    if int(metadata.get("image_size", -1)) != image_size:
        raise EncoderError(f"{path} was trained for {metadata.get('image_size')}px images, the env renders "
                           f"{image_size}px; {redo}")
    model = build_encoder(image_size)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != expected:
        wrong = sorted(k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k))
        raise EncoderError(f"{path} does not fit the encoder architecture (tensors {wrong[:4]} differ in shape or "
                           f"presence); {redo}")
    model.load_state_dict(tensors)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)  # frozen: online RL never changes it
    return model


def main(argv=None) -> None:
    import argparse

    import torch

    parser = argparse.ArgumentParser(description="Pretrain the RC car's camera encoder (not on the default track).")
    parser.add_argument("path", help="output .safetensors file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, report = pretrain_encoder(PretrainSettings(seed=args.seed))
    save_encoder(args.path, model, report)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
