"""What a node reports on /diagnostics: rejected inputs by reason, rates, deadline misses, ages of data."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field


class RateMeter:
    """Events per second over the last `window` events."""

    def __init__(self, window: int = 50):
        self._stamps_ns: deque[int] = deque(maxlen=window)

    def tick(self, stamp_ns: int | None = None) -> None:
        self._stamps_ns.append(time.monotonic_ns() if stamp_ns is None else stamp_ns)

    @property
    def hz(self) -> float:
        if len(self._stamps_ns) < 2:
            return 0.0
        span_s = (self._stamps_ns[-1] - self._stamps_ns[0]) / 1e9
        return (len(self._stamps_ns) - 1) / span_s if span_s > 0 else 0.0


class PeriodMeter:
    """A fixed-rate loop's own period: counts missed deadlines (a period over `miss_factor` x nominal)."""

    def __init__(self, rate_hz: float, miss_factor: float = 1.5, window: int = 200):
        self.nominal_ms = 1e3 / rate_hz
        self.miss_factor = miss_factor
        self.deadline_misses = 0
        self.periods_ms: deque[float] = deque(maxlen=window)
        self._last_ns: int | None = None

    def tick(self, stamp_ns: int | None = None) -> float | None:
        now = time.monotonic_ns() if stamp_ns is None else stamp_ns
        period_ms = None if self._last_ns is None else (now - self._last_ns) / 1e6
        self._last_ns = now
        if period_ms is not None:
            self.periods_ms.append(period_ms)
            if period_ms > self.miss_factor * self.nominal_ms:
                self.deadline_misses += 1
        return period_ms

    @property
    def max_jitter_ms(self) -> float:
        return max((abs(p - self.nominal_ms) for p in self.periods_ms), default=0.0)


@dataclass
class NodeHealth:
    """Counters a node fills in; `values()` flattens them into the key/value pairs of a DiagnosticStatus."""

    rejected: Counter = field(default_factory=Counter)  # reason -> count
    rates: dict[str, RateMeter] = field(default_factory=dict)
    ages_ms: dict[str, float] = field(default_factory=dict)  # topic -> age of its newest data
    extra: dict[str, object] = field(default_factory=dict)
    level: int = 0  # 0 OK, 1 WARN, 2 ERROR (diagnostic_msgs/DiagnosticStatus levels)
    message: str = "ok"

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def rate(self, name: str) -> RateMeter:
        return self.rates.setdefault(name, RateMeter())

    def set_status(self, level: int, message: str) -> None:
        self.level, self.message = level, message

    def values(self) -> dict[str, str]:
        out = {f"rejected.{reason}": str(n) for reason, n in sorted(self.rejected.items())}
        out["rejected.total"] = str(sum(self.rejected.values()))
        out.update({f"rate_hz.{name}": f"{meter.hz:.2f}" for name, meter in self.rates.items()})
        out.update({f"age_ms.{topic}": f"{age:.1f}" for topic, age in self.ages_ms.items()})
        out.update({key: str(value) for key, value in self.extra.items()})
        return out
