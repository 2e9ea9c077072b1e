"""Generic least-squares fit of simulator parameters to a logged trajectory.

The residual is simulated minus logged states over many short windows, each started from a
logged state (multiple shooting): errors cannot compound over the whole log, so the fit stays
well-conditioned even when the model is far off at the start. Parameters are optimized as
log-ratios to their initial guess, which makes relative steps equal for quantities of very
different magnitudes (a thrust coefficient of 3e-10 next to a mass of 0.03).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class Parameter:
    """A positive parameter to fit: its initial guess and the bounds to search within."""

    name: str
    initial: float
    lower: float
    upper: float

    def __post_init__(self):
        if not 0 < self.lower <= self.initial <= self.upper:
            raise ValueError(
                f"parameter {self.name}: need 0 < lower <= initial <= upper, got {self.lower}, {self.initial}, {self.upper}."
            )


@dataclass
class FitResult:
    values: dict[str, float]
    initial: dict[str, float]
    cost_before: float  # 0.5 * sum of squared residuals, as scipy reports it
    cost_after: float
    residual_rms_before: float
    residual_rms_after: float
    evaluations: int
    converged: bool
    message: str


def shooting_windows(num_steps: int, horizon: int, stride: int, start: int = 0) -> np.ndarray:
    """First steps of the windows `[k, k + horizon]` that fit in a log of `num_steps` commands."""
    if horizon < 1 or stride < 1:
        raise ValueError(f"horizon and stride must be >= 1, got {horizon} and {stride}.")
    starts = np.arange(start, num_steps - horizon + 1, stride)
    if len(starts) == 0:
        raise ValueError(f"a log of {num_steps} steps is too short for {horizon}-step windows after step {start}.")
    return starts


def fit_parameters(
    residuals: Callable[[dict[str, float]], np.ndarray],
    parameters: Sequence[Parameter],
    *,
    max_evaluations: int = 200,
    relative_step: float = 1e-4,
) -> FitResult:
    """Minimizes the squared `residuals(values)` over the `parameters` with scipy's least_squares (TRF)."""
    from scipy.optimize import least_squares

    names = [p.name for p in parameters]
    initial = np.array([p.initial for p in parameters], np.float64)
    lower = np.log([p.lower / p.initial for p in parameters])
    upper = np.log([p.upper / p.initial for p in parameters])
    # keep the start strictly inside the box: TRF needs an interior point
    lower = np.where(lower == 0.0, -1e-12, lower)
    upper = np.where(upper == 0.0, 1e-12, upper)

    def values_of(log_ratio: np.ndarray) -> dict[str, float]:
        return dict(zip(names, (initial * np.exp(log_ratio)).tolist()))

    def residual_vector(log_ratio: np.ndarray) -> np.ndarray:
        r = np.asarray(residuals(values_of(log_ratio)), np.float64).ravel()
        return np.where(np.isfinite(r), r, 1e6)  # a diverged rollout is a large, not an undefined, error

    r0 = residual_vector(np.zeros(len(names)))
    result = least_squares(
        residual_vector, np.zeros(len(names)), bounds=(lower, upper), method="trf",
        diff_step=relative_step, x_scale=1.0, max_nfev=max_evaluations, xtol=1e-10, ftol=1e-10,
    )
    return FitResult(
        values=values_of(result.x),
        initial=dict(zip(names, initial.tolist())),
        cost_before=float(0.5 * r0 @ r0),
        cost_after=float(result.cost),
        residual_rms_before=float(np.sqrt(np.mean(r0**2))),
        residual_rms_after=float(np.sqrt(np.mean(result.fun**2))),
        evaluations=int(result.nfev),
        converged=bool(result.success),
        message=str(result.message),
    )
