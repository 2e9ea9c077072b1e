"""Observation assembly for the actor: the newest message per topic, used only while it is fresh.

Each topic's newest value is kept with its header stamp (wall ns). At each control tick `assemble()`
either returns one observation built from values all younger than `max_age_ms`, or names the topics
that are silent (never heard, or too old), so the actor holds the robot and says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Latest:
    value: Any
    stamp_ns: int  # the data's own stamp (header), wall clock


@dataclass
class ObservationAssembler:
    topics: list[str]
    max_age_ms: float
    newest: dict[str, Latest] = field(default_factory=dict)

    def put(self, topic: str, value: Any, stamp_ns: int) -> None:
        current = self.newest.get(topic)
        if current is None or stamp_ns >= current.stamp_ns:  # a late, older message never replaces a newer one
            self.newest[topic] = Latest(value, stamp_ns)

    def ages_ms(self, now_ns: int) -> dict[str, float]:
        return {t: (now_ns - self.newest[t].stamp_ns) / 1e6 for t in self.topics if t in self.newest}

    def silent(self, now_ns: int) -> list[str]:
        ages = self.ages_ms(now_ns)
        return [t for t in self.topics if t not in ages or ages[t] > self.max_age_ms]

    def assemble(self, now_ns: int) -> tuple[dict[str, Any] | None, list[str]]:
        """({topic: value}, []) when every topic is fresh, else (None, the silent topics)."""
        silent = self.silent(now_ns)
        if silent:
            return None, silent
        return {t: self.newest[t].value for t in self.topics}, []

    def skew_ms(self) -> float:
        """Spread of the stamps that went into the newest observation (how far apart its parts were taken)."""
        stamps = [self.newest[t].stamp_ns for t in self.topics if t in self.newest]
        return (max(stamps) - min(stamps)) / 1e6 if stamps else 0.0
