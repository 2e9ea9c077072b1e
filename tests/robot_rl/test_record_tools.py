"""Recording tools: record-demos keeps only successful teleoperated episodes, record-rewards labels frames
by a held button, both optionally into a ROS 2 bag (MCAP) read back with rosbags."""

from __future__ import annotations

import argparse
import json

import numpy as np
import yaml

from drivers.teleop.base import InterventionDevice, idle_reading
from robot_rl.commands import record_demos as record_demos_cmd
from robot_rl.commands import record_rewards as record_rewards_cmd
from robot_rl.commands.record_demos import ScriptedTeleop, record_demos
from robot_rl.commands.record_rewards import record_rewards
from robot_rl.episodes import episode_paths, read_episode
from robot_rl.reward.dataset import load_frames


def write_config(tmp_path, env: str, **env_kwargs):
    path = tmp_path / "session.yaml"
    path.write_text(yaml.safe_dump({"name": "rec", "env": env, "env_kwargs": {"max_episode_steps": 40, **env_kwargs},
                                    "seed": 4}))
    return path


class WalksAwayEveryOtherEpisode(InterventionDevice):
    """An operator who drives well (the scripted expert), but lets go of the device in every other episode."""

    name = "flaky-operator"

    def __init__(self, env, adapter):
        self.env, self.inner, self.episode = env, ScriptedTeleop(env, adapter), -1

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self):
        if self.env.unwrapped.elapsed_steps == 0:
            self.episode += 1
        if self.episode % 2 == 1:
            return idle_reading(self.name)  # the arm holds still: this episode cannot succeed
        return self.inner.read()


def test_record_demos_keeps_only_successful_episodes(tmp_path):
    config = write_config(tmp_path, "robot_rl/PickCube-v0")
    summary = record_demos(config, episodes=3, run_dir=tmp_path / "run", make_device=WalksAwayEveryOtherEpisode,
                           log=lambda *_: None)
    assert summary["kept"] == 3 and summary["attempts"] == 5  # attempts 1, 3, 5 kept; 2 and 4 dropped
    files = episode_paths(tmp_path / "run" / "demos")
    assert len(files) == 3
    for path in files:
        episode = read_episode(path)
        assert episode["terminated"][-1] and episode["reward"][-1] == 1.0  # each kept episode ends lifted
        assert not episode["truncated"].any()
        assert episode["obs/state"].shape == (len(episode["action"]) + 1, 13)
        assert np.abs(episode["action"]).max() <= 1.0


def test_record_demos_command_with_scripted_device_writes_mcap_bag(tmp_path, capsys):
    from rosbags.rosbag2 import Reader

    config = write_config(tmp_path, "robot_rl/PickCube-v0")
    parser = argparse.ArgumentParser()
    record_demos_cmd.register(parser.add_subparsers())
    bag = tmp_path / "demos_bag"
    args = parser.parse_args(["record-demos", str(config), "--episodes", "2", "--device", "scripted",
                              "--run-dir", str(tmp_path / "run"), "--bag", str(bag)])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["kept"] == 2
    steps = sum(len(read_episode(p)["action"]) for p in episode_paths(tmp_path / "run" / "demos"))
    assert list(bag.glob("*.mcap"))
    with Reader(bag) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        types = {c.topic: c.msgtype for c in reader.connections}
    assert summary["attempts"] == 2  # the noiseless expert succeeds every time: every recorded step was kept
    assert counts["/robot_rl/action"] == counts["/robot_rl/observation/state"] == counts["/robot_rl/success"] == steps
    assert types["/robot_rl/teleop/twist"] == "geometry_msgs/msg/TwistStamped"
    # a second recording into an existing bag is refused in one sentence, before anything moves
    assert args.func(args) == 2 and "exists already" in capsys.readouterr().out


def test_record_rewards_labels_frames_by_the_held_button(tmp_path):
    config = write_config(tmp_path, "robot_rl/PickCubePixels-v0", image_size=32, cameras=["front"])
    summary = record_rewards(config, episodes=2, run_dir=tmp_path / "run", log=lambda *_: None)
    data, meta = load_frames(summary["dataset"])
    assert meta["cameras"] == ["front"] and data["front"].shape == (80, 32, 32, 3)
    labels, lift_m = data["label"], data["lift_m"]
    assert 0 < labels.sum() < len(labels) and set(data["episode"]) == {0, 1}
    # pressed only once the cube was up (the labeller reacts one step late, so the cube is well above rest)
    assert lift_m[labels == 1].min() > 0.03 and np.all(data["script"] == record_rewards_cmd.TELEOP_SCRIPT)
    again = record_rewards(config, episodes=1, run_dir=tmp_path / "run", log=lambda *_: None)
    data, _ = load_frames(again["dataset"])
    assert len(data["label"]) == 120 and set(data["episode"]) == {0, 1, 2}  # appended, episode ids continue
