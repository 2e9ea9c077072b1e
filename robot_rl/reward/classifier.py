"""The success classifier: a small CNN over one or more cameras, its versioned checkpoint and ONNX export.

Input: uint8 (N, H, W, 3) per camera, in `cameras` order; the cameras are stacked on the channel
axis, so they must share one image size. Output: one logit per frame (sigmoid = success probability).
A checkpoint stores the weights (tensors only, loaded with `weights_only=True`) with the image size,
the cameras, the decision threshold and the validation figures; loading it for a session whose
image size differs, or that lacks one of its cameras, is refused.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

CHECKPOINT_VERSION = 1


class ClassifierMismatchError(ValueError):
    """A checkpoint trained for other cameras or another image size than the session's."""


class SuccessClassifier(nn.Module):
    def __init__(self, cameras, image_size: int, channels=(16, 32, 64, 64)):
        super().__init__()
        self.cameras = tuple(cameras)
        self.image_size = int(image_size)
        layers, width = [], 3 * len(self.cameras)
        for out in channels:
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.GroupNorm(1, out), nn.ReLU()]
            width = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: uint8 (N, H, W, 3 * cameras), the cameras stacked on the last axis; returns logits (N,)."""
        x = images.permute(0, 3, 1, 2).float() / 255.0 - 0.5
        return self.head(self.features(x)).squeeze(-1)


class _Probability(nn.Module):
    """What the ONNX file computes: the success probability, so a runtime needs no sigmoid of its own."""

    def __init__(self, classifier: SuccessClassifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.classifier(images))


def stack_cameras(frames: dict, cameras) -> torch.Tensor:
    """{camera: uint8 (N, H, W, 3) or (H, W, 3)} -> uint8 (N, H, W, 3 * cameras)."""
    arrays = [torch.as_tensor(frames[c]) for c in cameras]
    stacked = torch.cat(arrays, dim=-1)
    return stacked if stacked.dim() == 4 else stacked.unsqueeze(0)


def save_classifier(path: str | Path, model: SuccessClassifier, threshold: float, metrics: dict,
                    encoder: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"version": CHECKPOINT_VERSION, "cameras": list(model.cameras), "image_size": model.image_size,
            "threshold": float(threshold), "metrics": metrics, "encoder": encoder}
    # Plain strings and tensors only, so it loads with weights_only=True.
    torch.save({"meta": json.dumps(meta), "weights": model.state_dict()}, path)
    return path


def load_classifier(path: str | Path, image_size: int | None = None, cameras=None) -> tuple[SuccessClassifier, dict]:
    """(model in eval mode, meta); refuses a checkpoint whose image size or cameras differ from the session's."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: train one with `robot-rl train-reward RUN`.")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    meta = json.loads(blob["meta"])
    if meta.get("version") != CHECKPOINT_VERSION:
        raise ClassifierMismatchError(f"{path} is a version {meta.get('version')} reward classifier, this code reads "
                                      f"version {CHECKPOINT_VERSION}: retrain it with `robot-rl train-reward RUN`.")
    if image_size is not None and int(image_size) != meta["image_size"]:
        raise ClassifierMismatchError(f"{path} was trained on {meta['image_size']}x{meta['image_size']} images but the "
                                      f"session renders {image_size}x{image_size}: retrain it at that size or set the "
                                      f"session's image_size to {meta['image_size']}.")
    missing = [c for c in meta["cameras"] if cameras is not None and c not in list(cameras)]
    if missing:
        raise ClassifierMismatchError(f"{path} was trained on cameras {meta['cameras']} but the session has "
                                      f"{list(cameras)} (no {', '.join(missing)}): retrain it on the session's "
                                      "cameras or add those cameras to the session.")
    model = SuccessClassifier(meta["cameras"], meta["image_size"])
    model.load_state_dict(blob["weights"])
    return model.eval(), meta


def load_pretrained_encoder(model: SuccessClassifier, path: str | Path) -> None:
    """Copy `features.*` tensors from a local file (a state dict saved with torch.save) into the model."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    features = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    if not features:
        raise ValueError(f"{path} holds no 'features.*' tensors: pass a state dict saved from a SuccessClassifier.")
    model.features.load_state_dict(features)


def export_classifier_onnx(model: SuccessClassifier, path: str | Path, threshold: float) -> Path:
    """ONNX with input `images` uint8 (N, H, W, 3 * cameras) and output `success_probability` (N,)."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, model.image_size, model.image_size, 3 * len(model.cameras), dtype=torch.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(_Probability(model.eval()), (example,), str(path), input_names=["images"],
                          output_names=["success_probability"],
                          dynamic_axes={"images": {0: "batch"}, "success_probability": {0: "batch"}},
                          opset_version=17, dynamo=False)
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = "robot_rl.reward_classifier", json.dumps(
        {"cameras": list(model.cameras), "image_size": model.image_size, "threshold": float(threshold)})
    onnx.save(proto, str(path))
    return path
