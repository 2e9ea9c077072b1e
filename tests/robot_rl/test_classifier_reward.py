"""The success classifier as a session's only reward: the wrapper around a state pick-cube env with a
real (small, trained here) classifier on rendered 32x32 front-camera frames, the human button, the
checkpoint checks, the lag rule and a short end-to-end session."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch
import yaml

from robot_rl.actor import task_metrics
from robot_rl.config import SessionConfig
from robot_rl.envs import make_env, make_expert
from robot_rl.reward.classifier import ClassifierMismatchError, load_classifier, save_classifier
from robot_rl.reward.dataset import collect_pick_cube_frames
from robot_rl.reward.frames import ClassifierFrames
from robot_rl.reward.runner import RewardClassifierRunner
from robot_rl.reward.training import TrainSettings, train_classifier
from robot_rl.reward.wrapper import ClassifierReward

torch.set_num_threads(1)
IMAGE_SIZE = 32
EPISODE_STEPS = 40  # the scripted expert lifts the cube in ~25 steps


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small classifier trained on 16 randomized simulated episodes (~12-25 s on 2 busy cores); the epoch
    count, not the clock, ends its training, so every run gets the same classifier."""
    data = collect_pick_cube_frames(16, image_size=IMAGE_SIZE, cameras=("front",), seed=1)
    model, threshold, report = train_classifier(data, ("front",), TrainSettings(epochs=16, seed=0, max_seconds=300))
    return save_classifier(tmp_path_factory.mktemp("reward") / "classifier_v1.pt", model, threshold, report)


def session(checkpoint, **reward) -> SessionConfig:
    return SessionConfig(name="t", env="robot_rl/PickCube-v0", env_kwargs={"max_episode_steps": EPISODE_STEPS},
                         reward={"source": "classifier", "checkpoint": str(checkpoint), "cameras": ["front"],
                                 "image_size": IMAGE_SIZE, **reward})


def expert_episode(env, seed: int = 0, steps: int | None = None):
    """(obs, reward, terminated, truncated, info) per step of one scripted-expert episode."""
    expert = make_expert(env)
    env.reset(seed=seed)
    out = []
    while steps is None or len(out) < steps:
        out.append(env.step(expert.act()))
        if out[-1][2] or out[-1][3]:
            break
    return out


def test_reward_is_the_classifiers_verdict_on_each_steps_own_frame(checkpoint):
    env = make_env(session(checkpoint, terminate_on_success=False))  # the whole episode: before, during and after the lift
    model, meta = load_classifier(checkpoint)
    own_camera = ClassifierFrames(env, ("front",), IMAGE_SIZE)  # an independent render of the same state
    unwrapped, agree, truncated = env.unwrapped, [], False
    expert = make_expert(env)
    env.reset(seed=3)
    try:
        while not truncated:
            _, reward, terminated, truncated, info = env.step(expert.act())
            with torch.no_grad():
                expected = float(torch.sigmoid(model(torch.as_tensor(own_camera(None)["front"])[None]))[0])
            assert info["classifier_probability"] == pytest.approx(expected, abs=1e-5)
            assert info["classifier_success"] == (expected >= meta["threshold"]) and not info["classifier_late"]
            assert reward == float(info["classifier_success"]) and not terminated
            lifted = unwrapped.cube_pos_m[2] - unwrapped.cube_rest_z_m >= unwrapped.lift_success_m
            assert info["task_success"] == (lifted and np.linalg.norm(unwrapped.cube_pos_m - unwrapped.ee_pos_m) < 0.03)
            agree.append(info["classifier_success"] == info["task_success"])
    finally:
        own_camera.close()
        env.close()
    assert len(agree) == EPISODE_STEPS and truncated
    # The verdict followed the cube, not a constant: measured 40 of 40 frames agreeing with the true success (this
    # small classifier's held-out frame accuracy is ~0.9, so 0.8 leaves room for a few borderline frames).
    assert np.mean(agree) >= 0.8


def test_the_classifier_ends_the_episode_on_its_verdict(checkpoint):
    env = make_env(session(checkpoint))
    steps = expert_episode(env, seed=3)
    env.close()
    assert steps[-1][2] and steps[-1][1] == 1.0 and steps[-1][4]["classifier_success"]  # ended by the classifier
    assert all(s[1] == 0.0 and not s[2] for s in steps[:-1])


def test_the_task_alone_neither_rewards_nor_ends_an_episode_but_stays_in_info(checkpoint):
    env = make_env(session(checkpoint))
    env.runner.threshold = 2.0  # a classifier that never says success
    steps = expert_episode(env, seed=0)
    infos = [s[4] for s in steps]
    first = next(i for i, info in enumerate(infos) if info["task_success"])  # the expert did lift the cube
    assert len(steps) == EPISODE_STEPS and steps[-1][3] and not steps[-1][2]  # ran to the time limit
    assert all(s[1] == 0.0 for s in steps) and all(info["task_reward"] == 1.0 for info in infos if info["task_success"])
    assert all(info["is_success"] for info in infos[first:])  # true success, as evaluations read it
    assert task_metrics(env, [infos[-1]])["classifier_false_negatives"] == 1

    env.runner.threshold = 0.0  # a classifier that always says success: a false positive on step 1
    (step,) = expert_episode(env, seed=0)
    assert step[1] == 1.0 and step[2] and not step[4]["is_success"]
    metrics = task_metrics(env, [infos[-1], step[4]])  # as the actor reads them
    assert metrics["classifier_false_positives"] == 1 and metrics["classifier_disagreements"] == 2
    env.close()


def test_success_frames_asks_for_consecutive_success_verdicts(checkpoint):
    env = make_env(session(checkpoint, success_frames=2))
    env.runner.threshold = 0.0  # every frame a success: the second in a row ends the episode
    first, second = expert_episode(env, seed=0)
    assert first[1] == 0.0 and not first[2] and first[4]["classifier_frame_success"]
    assert second[1] == 1.0 and second[2] and second[4]["classifier_success"]
    env.runner.threshold = 2.0
    env.reset(seed=0)
    env.set_human_override(True)  # a human's success needs no second frame
    _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
    assert reward == 1.0 and terminated and info["reward_overridden"]
    env.close()


def test_a_held_gamepad_button_overrides_the_classifier(checkpoint, tmp_path):
    from drivers.teleop.gamepad import JS_BUTTON, js_event

    fifo = tmp_path / "js0"
    os.mkfifo(fifo)
    env = make_env(session(checkpoint, human_override={"device": "gamepad", "path": str(fifo),
                                                       "success_button": 2, "failure_button": 3}))
    writer = os.open(fifo, os.O_WRONLY)  # the kernel's side of /dev/input/js0

    def press(button: int, down: bool) -> None:
        os.write(writer, js_event(int(down), JS_BUTTON, button))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            buttons = env.override_device.read().buttons
            if button < len(buttons) and buttons[button] == down:
                return
            time.sleep(0.01)
        raise AssertionError("the gamepad reader never saw the button")

    try:
        env.runner.threshold = 2.0  # the classifier says no success...
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        assert reward == 0.0 and not terminated and not info["reward_overridden"]
        press(2, True)  # ...the human says success
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        assert reward == 1.0 and terminated and info["reward_overridden"] and not info["task_success"]
        press(2, False)

        env.runner.threshold = 0.0  # the classifier says success...
        env.reset(seed=0)
        press(3, True)  # ...the human says no
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        assert reward == 0.0 and not terminated and info["reward_overridden"]
        press(3, False)
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        assert reward == 1.0 and terminated and not info["reward_overridden"]  # released: the classifier again
    finally:
        os.close(writer)
        env.close()


def test_a_checkpoint_for_another_image_size_or_camera_is_refused(checkpoint):
    with pytest.raises(ClassifierMismatchError, match="trained on 32x32 images but the session renders 64x64"):
        make_env(session(checkpoint, image_size=64))
    with pytest.raises(ClassifierMismatchError, match=r"trained on cameras \['front'\] but the session has \['wrist'\]"):
        make_env(session(checkpoint, cameras=["wrist"]))
    with pytest.raises(FileNotFoundError, match="train one with `robot-rl train-reward RUN`"):
        make_env(session(checkpoint.parent / "missing.pt"))


def test_a_late_verdict_counts_as_no_success_and_never_lands_on_a_later_step(checkpoint):
    import gymnasium as gym

    import sim2real  # noqa: F401  (registers the env)

    model, _ = load_classifier(checkpoint)
    release = threading.Event()

    def probability(images) -> float:
        with torch.no_grad():
            return float(torch.sigmoid(model(torch.as_tensor(images)))[0])

    def score(images: np.ndarray) -> float:
        if not release.is_set():  # the first frame: slow, and a success
            release.wait(2.0)
            return 1.0
        return probability(images)

    base = gym.make("robot_rl/PickCube-v0", max_episode_steps=EPISODE_STEPS)
    # Threshold 1.0: only the late verdict (exactly 1.0) is a success; the real classifier's on the
    # cube at rest is well below it (checked below).
    runner = RewardClassifierRunner(score, ("front",), threshold=1.0)
    frames = ClassifierFrames(base, ("front",), IMAGE_SIZE)
    env = ClassifierReward(base, runner, frames, verdict_deadline_ms=50)
    try:
        env.reset(seed=0)
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        assert info["classifier_late"] and reward == 0.0 and not terminated  # missed its deadline: no success
        release.set()  # the late "success" for frame 1 is published now...
        _, reward, terminated, _, info = env.step(np.zeros(4, np.float32))
        own_frame = probability(frames(None)["front"][None])
        # ...and step 2 gets the verdict on its own frame (the cube at rest), not frame 1's.
        assert not info["classifier_late"] and info["classifier_probability"] == pytest.approx(own_frame, abs=1e-5)
        assert own_frame < 1.0 and reward == 0.0 and not terminated
        assert runner.latest().seq == 2 and env.late_verdicts == 1 and info["classifier_late_verdicts"] == 1
    finally:
        release.set()
        env.close()


@pytest.mark.slow
def test_a_short_session_with_the_classifier_reward_reports_true_success(checkpoint, tmp_path):
    from robot_rl.rundir import RunDir, read_jsonl
    from robot_rl.session import train

    config = tmp_path / "session.yaml"
    config.write_text(yaml.safe_dump({
        "name": "classifier_short", "env": "robot_rl/PickCube-v0", "env_kwargs": {"max_episode_steps": EPISODE_STEPS},
        "learner": {"hidden_dims": [64, 64], "num_critics": 2, "utd": 1, "warmup_steps": 100, "batch_size": 64},
        "demos": {"source": "expert", "episodes": 2},
        "reward": {"source": "classifier", "checkpoint": str(checkpoint), "cameras": ["front"], "image_size": IMAGE_SIZE},
        "train": {"max_env_steps": 200, "eval_every_env_steps": 200, "eval_episodes": 2, "final_eval_episodes": 2},
    }))
    run = RunDir(tmp_path / "run")
    report = train(config, run_dir=run.root, quiet=True, log=lambda *_: None)
    training = read_jsonl(run.logs / "task_episodes.jsonl")
    assert training and all("classifier_disagreements" in r for r in training)  # the actor's env was wrapped
    summary = report["classifier_reward"]
    assert summary["training_episodes"] == len(training)
    assert summary["classifier_disagreements"] == summary["classifier_false_positives"] + summary["classifier_false_negatives"]
    assert report["success_rate"] is not None and "classifier_disagreements" in report["task_metrics"]
    assert "classifier reward, training: classifier disagreements" in (run.root / "report.md").read_text()
    assert yaml.safe_load(run.config.read_text())["reward"]["checkpoint"] == str(checkpoint)


def test_the_session_classifiers_hover_negatives_never_hold_the_cube():
    from robot_rl.reward.dataset import EXTRA_SCRIPTS, SCRIPTS

    data = collect_pick_cube_frames(2, image_size=IMAGE_SIZE, seed=2, script_weights={"hover": 1.0})
    assert set(data["script"].tolist()) == {(SCRIPTS + EXTRA_SCRIPTS).index("hover")}
    assert not data["label"].any() and data["lift_m"].max() < 0.05  # hovering near the cube, never lifting it
    with pytest.raises(ValueError, match="unknown scripts \\['wave'\\]"):
        collect_pick_cube_frames(1, image_size=IMAGE_SIZE, script_weights={"wave": 1.0})
