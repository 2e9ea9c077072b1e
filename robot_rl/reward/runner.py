"""`RewardClassifierRunner`: the success classifier off the control thread, newest frame first.

The control loop `submit`s each observation and goes on; a worker thread scores the newest one
(older unscored frames are dropped, never queued) and publishes a `RewardReading`. The loop reads
`latest()` for the reward and termination, or `wait_for(seq)` where a step must use its own frame
(simulation, tests). A human button (`override(True/False)`) wins over the classifier until cleared.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from robot_rl.reward.classifier import load_classifier, stack_cameras


@dataclass(frozen=True)
class RewardReading:
    seq: int  # the submit() number of the frame it scored
    stamp_ns: int  # that frame's stamp
    probability: float
    success: bool  # probability >= threshold, or the human override
    overridden: bool
    latency_ms: float  # submit to result

    @property
    def reward(self) -> float:
        return 1.0 if self.success else 0.0

    @property
    def terminated(self) -> bool:
        return self.success


class RewardClassifierRunner:
    def __init__(self, score: Callable[[np.ndarray], float], cameras, threshold: float):
        """score(uint8 (1, H, W, 3 * cameras)) -> success probability."""
        self.score, self.cameras, self.threshold = score, tuple(cameras), float(threshold)
        self._lock = threading.Condition()
        self._pending: tuple[int, int, int, np.ndarray] | None = None
        self._latest: RewardReading | None = None
        self._override: bool | None = None
        self._seq = 0
        self._stop = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="reward-classifier", daemon=True)
        self._thread.start()

    @classmethod
    def from_checkpoint(cls, path: str | Path, image_size: int, cameras) -> "RewardClassifierRunner":
        """A torch runner for the session's image size and cameras (a mismatching checkpoint is refused)."""
        import torch

        model, meta = load_classifier(path, image_size=image_size, cameras=cameras)

        def score(images: np.ndarray) -> float:
            with torch.no_grad():
                return float(torch.sigmoid(model(torch.as_tensor(images)))[0])

        return cls(score, meta["cameras"], meta["threshold"])

    def submit(self, observation: dict, stamp_ns: int | None = None) -> int:
        """Hand over a frame (the observation dict with the classifier's cameras); returns its seq. Never blocks."""
        images = stack_cameras({c: np.asarray(observation[c]) for c in self.cameras}, self.cameras).numpy()
        with self._lock:
            self._seq += 1
            if self._pending is not None:
                self.dropped += 1  # newest frame wins: a stale one is not worth scoring
            self._pending = (self._seq, stamp_ns if stamp_ns is not None else time.monotonic_ns(), time.monotonic_ns(), images)
            self._lock.notify_all()
            return self._seq

    def override(self, success: bool | None) -> None:
        """A human's word: True/False forces the result until override(None)."""
        with self._lock:
            self._override = success
            if self._latest is not None:
                self._latest = self._with_override(self._latest)
            self._lock.notify_all()

    @property
    def overriding(self) -> bool | None:
        """The human's current word (True/False), or None when the classifier decides."""
        with self._lock:
            return self._override

    def _with_override(self, reading: RewardReading) -> RewardReading:
        if self._override is None:
            success = reading.probability >= self.threshold
            return RewardReading(reading.seq, reading.stamp_ns, reading.probability, success, False, reading.latency_ms)
        return RewardReading(reading.seq, reading.stamp_ns, reading.probability, self._override, True, reading.latency_ms)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._pending is None and not self._stop:
                    self._lock.wait()
                if self._stop:
                    return
                seq, stamp_ns, submitted_ns, images = self._pending
                self._pending = None
            probability = self.score(images)
            latency_ms = (time.monotonic_ns() - submitted_ns) / 1e6
            with self._lock:
                self._latest = self._with_override(RewardReading(seq, stamp_ns, probability, False, False, latency_ms))
                self._lock.notify_all()

    def latest(self) -> RewardReading | None:
        with self._lock:
            return self._latest

    def wait_for(self, seq: int, timeout_s: float = 1.0) -> RewardReading:
        """The result for frame `seq` (or a newer one); raises TimeoutError if the worker is that far behind."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._latest is not None and self._latest.seq >= seq, timeout_s):
                raise TimeoutError(f"the reward classifier did not score frame {seq} within {timeout_s} s.")
            return self._latest

    def close(self) -> None:
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        self._thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
