"""Reward classifier pieces: threshold selection, checkpoint refusal, ONNX parity, the off-thread runner, the CLI."""

from __future__ import annotations

import argparse
import json
import threading

import numpy as np
import pytest
import torch

from robot_rl.reward.classifier import (
    ClassifierMismatchError,
    SuccessClassifier,
    export_classifier_onnx,
    load_classifier,
    save_classifier,
)
from robot_rl.reward.dataset import load_frames, save_frames
from robot_rl.reward.runner import RewardClassifierRunner
from robot_rl.reward.training import binary_metrics, split_episodes, threshold_for_fpr

torch.set_num_threads(1)


def test_threshold_meets_target_fpr_exactly_at_the_limit():
    rng = np.random.default_rng(0)
    negatives = rng.uniform(0.0, 0.8, 1000).astype(np.float32)
    positives = rng.uniform(0.5, 1.0, 300).astype(np.float32)
    scores = np.concatenate([negatives, positives])
    labels = np.concatenate([np.zeros(1000), np.ones(300)])
    threshold = threshold_for_fpr(scores, labels, 0.01)
    metrics = binary_metrics(scores, labels, threshold)
    assert metrics["false_positive_rate"] == 0.01  # 10 of 1000 negatives: as many as allowed, not one more
    # The lowest such threshold: lowering it to the 11th-highest negative adds a false positive.
    eleventh = np.sort(negatives)[::-1][10]
    assert binary_metrics(scores, labels, float(eleventh))["false_positive_rate"] > 0.01
    assert threshold_for_fpr(scores, labels, 0.0) > negatives.max()


def test_threshold_with_tied_saturated_negatives_rejects_all_ties():
    scores = np.array([1.0, 1.0, 1.0, 0.2, 0.1, 1.0], np.float32)
    labels = np.array([0, 0, 0, 0, 0, 1])
    threshold = threshold_for_fpr(scores, labels, 0.25)  # 1 false positive allowed, but the top 3 are tied
    assert binary_metrics(scores, labels, threshold)["false_positive_rate"] == 0.0


def test_threshold_needs_negatives():
    with pytest.raises(ValueError, match="no negative frames"):
        threshold_for_fpr(np.ones(4), np.ones(4), 0.01)


def test_split_is_by_episode():
    episodes = np.repeat(np.arange(20), 7)
    parts = split_episodes(episodes)
    sets = [set(episodes[p]) for p in parts]
    assert sum(len(p) for p in parts) == len(episodes)
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_checkpoint_roundtrip_and_mismatch_refusal(tmp_path):
    model = SuccessClassifier(("front",), 32)
    path = save_classifier(tmp_path / "c.pt", model, 0.7, {"validation": {"accuracy": 1.0}})
    loaded, meta = load_classifier(path, image_size=32, cameras=("front", "wrist"))
    assert meta["threshold"] == pytest.approx(0.7) and meta["cameras"] == ["front"]
    images = torch.randint(0, 255, (2, 32, 32, 3), dtype=torch.uint8)
    torch.testing.assert_close(loaded(images), model.eval()(images))
    with pytest.raises(ClassifierMismatchError, match="trained on 32x32 images but the session renders 64x64"):
        load_classifier(path, image_size=64, cameras=("front",))
    with pytest.raises(ClassifierMismatchError, match=r"no front\): retrain it"):
        load_classifier(path, image_size=32, cameras=("wrist",))


def test_onnx_export_matches_torch(tmp_path):
    import onnxruntime as ort

    model = SuccessClassifier(("front", "wrist"), 32).eval()
    path = export_classifier_onnx(model, tmp_path / "c.onnx", threshold=0.6)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    images = torch.randint(0, 255, (3, 32, 32, 6), dtype=torch.uint8)
    (probability,) = session.run(None, {"images": images.numpy()})
    np.testing.assert_allclose(probability, torch.sigmoid(model(images)).detach().numpy(), atol=1e-5)
    meta = json.loads(session.get_modelmeta().custom_metadata_map["robot_rl.reward_classifier"])
    assert meta == {"cameras": ["front", "wrist"], "image_size": 32, "threshold": 0.6}


def test_runner_scores_off_thread_newest_frame_and_human_override():
    gate = threading.Event()
    scored_on = []

    def score(images):
        scored_on.append(threading.current_thread().name)
        gate.wait(2.0)
        return float(images.mean() / 255.0)

    frame = lambda value: {"front": np.full((8, 8, 3), value, np.uint8)}  # noqa: E731
    with RewardClassifierRunner(score, ("front",), threshold=0.5) as runner:
        first = runner.submit(frame(0))
        # While frame 1 is being scored, frames 2 and 3 arrive: 2 is dropped for 3.
        while not scored_on:
            threading.Event().wait(0.001)
        runner.submit(frame(100))
        last = runner.submit(frame(255))
        gate.set()
        reading = runner.wait_for(last)
        assert first == 1 and reading.seq == last == 3 and runner.dropped == 1
        assert reading.success and reading.reward == 1.0 and reading.terminated and not reading.overridden
        assert scored_on == ["reward-classifier"] * 2
        runner.override(False)  # the human says: not a success
        assert not runner.latest().success and runner.latest().overridden
        runner.override(None)
        assert runner.latest().success


def test_dataset_file_roundtrip_without_pickle(tmp_path):
    data = {"front": np.zeros((4, 8, 8, 3), np.uint8), "label": np.array([0, 1, 0, 1], np.uint8),
            "episode": np.array([0, 0, 1, 1], np.int32)}
    path = save_frames(tmp_path / "frames.npz", data, ["front"])
    loaded, meta = load_frames(path)
    assert meta == {"cameras": ["front"], "image_size": 8, "frames": 4}
    np.testing.assert_array_equal(loaded["label"], data["label"])
    with pytest.raises(FileNotFoundError, match="pass --dataset"):
        load_frames(tmp_path / "missing.npz")


def test_train_reward_command_writes_versioned_checkpoints(tmp_path, capsys):
    from robot_rl.commands import train_reward

    # Two visually separable classes: bright frames are successes.
    rng = np.random.default_rng(0)
    labels = np.tile([0, 1], 100).astype(np.uint8)
    images = (rng.integers(0, 60, (200, 16, 16, 3)) + labels[:, None, None, None] * 150).astype(np.uint8)
    dataset = save_frames(tmp_path / "frames.npz", {"front": images, "label": labels,
                                                    "episode": np.arange(200, dtype=np.int32) // 4}, ["front"])
    parser = argparse.ArgumentParser()
    train_reward.register(parser.add_subparsers())
    run = tmp_path / "run"
    for version in (1, 2):
        args = parser.parse_args(["train-reward", str(run), "--dataset", str(dataset), "--epochs", "3"])
        assert args.func(args) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed["checkpoint"].endswith(f"classifier_v{version}.pt")
        assert printed["val_accuracy"] == 1.0
    assert (run / "reward" / "classifier_v2.onnx").is_file()
    _, meta = load_classifier(run / "reward" / "classifier_v2.pt", image_size=16, cameras=("front",))
    assert meta["metrics"]["test"]["accuracy"] == 1.0
    with RewardClassifierRunner.from_checkpoint(run / "reward" / "classifier_v2.pt", 16, ("front", "wrist")) as runner:
        bright = {"front": np.full((16, 16, 3), 200, np.uint8), "wrist": np.zeros((16, 16, 3), np.uint8)}
        assert runner.wait_for(runner.submit(bright)).success
    args = parser.parse_args(["train-reward", str(run), "--dataset", str(tmp_path / "nope.npz")])
    assert args.func(args) == 2
    assert "does not exist" in capsys.readouterr().err
