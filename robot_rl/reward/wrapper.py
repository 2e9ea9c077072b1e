"""`ClassifierReward`: a Gymnasium wrapper whose reward and termination come from the success classifier.

Per step: the env steps, the classifier's camera frames of the new state are handed to the
`RewardClassifierRunner` (its own thread), and the step waits up to `verdict_deadline_ms` for the
verdict on that very frame. Success gives reward 1 (and, with `terminate_on_success`, ends the
episode); anything else gives 0.

Lag: the verdict applies to the step whose frame it scored, never to another. A verdict that misses
its deadline counts as "no success" for its step (`info["classifier_late"]`); when it arrives later
it is dropped, because the next step waits for its own, newer frame number. The human override
(a held button, or `set_human_override`) wins over the classifier, on time or late.

The task's own reward and termination never reach the learner: the episode runs on when the task
alone says success, ends when the classifier says so or at the time limit. `info["is_success"]`
stays the TRUE task success (reached at any step of the episode, as the unwrapped env, which ends
on its first success, reports it), so evaluations and reports measure the true task;
`info["task_success"]` is this step's true success, `info["classifier_success"]` this step's verdict.

`success_frames` > 1 asks for that many consecutive success frames (a late frame breaks the run):
single-frame false positives, and the frame caught mid-lift just short of the success height, no
longer end an episode one step before the task is truly done.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

from robot_rl.reward.frames import ClassifierFrames
from robot_rl.reward.runner import RewardClassifierRunner


class ClassifierReward(gym.Wrapper):
    def __init__(self, env: gym.Env, runner: RewardClassifierRunner, frames: ClassifierFrames,
                 verdict_deadline_ms: float = 100.0, terminate_on_success: bool = True, override_device=None,
                 success_button: int = 2, failure_button: int | None = 3, success_frames: int = 1):
        super().__init__(env)
        self.success_frames = int(success_frames)
        self.runner, self.frames = runner, frames
        self.verdict_deadline_s = verdict_deadline_ms / 1000.0
        self.terminate_on_success = terminate_on_success
        self.override_device, self.success_button, self.failure_button = override_device, success_button, failure_button
        unwrapped = env.unwrapped
        spec_steps = env.spec.max_episode_steps if env.spec else None
        self.max_episode_steps = getattr(unwrapped, "max_episode_steps", None) or spec_steps
        self.late_verdicts = 0  # over the wrapper's life
        self._episode_steps = 0
        self._task_reached = self._classifier_reached = False
        self._episode_late = 0
        self._streak = 0  # consecutive frames the classifier called a success
        # robot_rl.actor.task_metrics finds this wrapper's episode_metrics first; it adds to the task's own figures
        self._task_episode_metrics = getattr(unwrapped, "episode_metrics", None)

    def set_human_override(self, success: bool | None) -> None:
        """True/False overrides the classifier until set back to None (a ROS service or UI calls this)."""
        self.runner.override(success)

    def _poll_override_device(self) -> None:
        if self.override_device is None:
            return
        buttons = self.override_device.read().buttons

        def held(index):
            return index is not None and index < len(buttons) and buttons[index]

        self.runner.override(True if held(self.success_button) else False if held(self.failure_button) else None)

    def _verdict(self, observation) -> tuple[bool, float, bool, bool]:
        """(success, probability, late, overridden) for this step's own frame."""
        self._poll_override_device()
        seq = self.runner.submit(self.frames(observation), time.monotonic_ns())
        try:
            reading = self.runner.wait_for(seq, self.verdict_deadline_s)
        except TimeoutError:
            reading = None
        late = reading is None or reading.seq != seq  # another frame's verdict is never this step's
        human = self.runner.overriding
        if human is not None:
            return human, (np.nan if late else reading.probability), late, True
        if late:
            return False, np.nan, True, False
        return reading.success, reading.probability, False, reading.overridden

    def reset(self, **kwargs):
        observation, info = self.env.reset(**kwargs)
        self._episode_steps, self._episode_late, self._streak = 0, 0, 0
        self._task_reached = self._classifier_reached = False
        return observation, {**info, "task_success": False, "is_success": False}

    def step(self, action):
        observation, task_reward, _task_terminated, truncated, info = self.env.step(action)
        self._episode_steps += 1
        task_success = bool(info.get("is_success", info.get("success", False)))
        self._task_reached |= task_success
        frame_success, probability, late, overridden = self._verdict(observation)
        self._streak = self._streak + 1 if frame_success else 0
        success = frame_success and (overridden or self._streak >= self.success_frames)  # a human's word needs no repeat
        self._classifier_reached |= success
        self.late_verdicts += late
        self._episode_late += late
        terminated = success and self.terminate_on_success
        at_limit = self.max_episode_steps is not None and self._episode_steps >= self.max_episode_steps
        truncated = not terminated and (bool(truncated) or at_limit)
        info = {**info, "is_success": self._task_reached, "task_success": task_success, "task_reward": float(task_reward),
                "classifier_success": success, "classifier_frame_success": frame_success,
                "classifier_probability": float(probability),
                "classifier_late": late, "reward_overridden": overridden,
                "classifier_episode_success": self._classifier_reached, "classifier_late_verdicts": self._episode_late}
        return observation, 1.0 if success else 0.0, terminated, truncated, info

    def episode_metrics(self, final_infos: list[dict]) -> dict:
        """Over episodes (their last infos): where the classifier's episode verdict and the true task disagree."""
        metrics = dict(self._task_episode_metrics(final_infos)) if self._task_episode_metrics else {}
        said = [bool(i.get("classifier_episode_success")) for i in final_infos]
        true = [bool(i.get("is_success")) for i in final_infos]
        false_positives = sum(s and not t for s, t in zip(said, true))
        false_negatives = sum(t and not s for s, t in zip(said, true))
        metrics.update(classifier_disagreements=false_positives + false_negatives,
                       classifier_false_positives=false_positives, classifier_false_negatives=false_negatives,
                       classifier_late_verdicts=sum(int(i.get("classifier_late_verdicts", 0)) for i in final_infos))
        return metrics

    def close(self) -> None:
        self.runner.close()
        self.frames.close()
        if self.override_device is not None:
            self.override_device.close()
        super().close()
