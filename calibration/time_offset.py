"""Camera-to-robot clock offset, by cross-correlating the speed each one saw.

The camera tracks the board (or a marker) and the robot logs its gripper position; both are
resampled onto one time grid, turned into speed (frame-free: no extrinsics needed) and
correlated at every candidate lag. The best lag is refined between grid points by fitting a
parabola through the peak.

Convention: ``offset_ms`` is (camera stamp) - (robot stamp) of the same instant; subtract it
from camera stamps to put them on the robot clock. Move the robot in translation with
varied speeds (starts, stops): speed under rotation differs between the board and the flange.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.errors import CalibrationError

# A grid point farther than this many sample intervals from any sample is a gap (dropped frames).
_GAP_INTERVALS = 2.5
# At fewer than this many seconds of overlap a correlation means little.
_MIN_OVERLAP_S = 2.0


@dataclass
class TimeOffsetResult:
    offset_ms: float  # camera stamp minus robot stamp of the same instant
    correlation: float  # Pearson r of the two speed signals at the offset; near 1 = trustworthy
    overlap_s: float  # length of the compared stretch at the offset
    grid_hz: float


def estimate_time_offset(camera_t_s: np.ndarray, camera_positions: np.ndarray, robot_t_s: np.ndarray,
                         robot_positions: np.ndarray, *, max_offset_ms: float = 500.0, grid_hz: float = 200.0,
                         smoothing_s: float = 0.05) -> TimeOffsetResult:
    """Offset between two position streams of the same motion, each on its own clock and rate."""
    dt_s = 1.0 / grid_hz
    camera_t_s, camera_positions = _checked("camera", camera_t_s, camera_positions)
    robot_t_s, robot_positions = _checked("robot", robot_t_s, robot_positions)
    t0_s = min(camera_t_s[0], robot_t_s[0])
    window = max(1, int(round(smoothing_s / dt_s)))
    camera_first, camera_speed = _speed_on_grid(camera_t_s, camera_positions, t0_s, dt_s, window)
    robot_first, robot_speed = _speed_on_grid(robot_t_s, robot_positions, t0_s, dt_s, window)

    max_lag = int(np.ceil(max_offset_ms / 1000.0 / dt_s))
    lags = np.arange(-max_lag, max_lag + 1)
    scores = np.array([_pearson_at_lag(camera_first, camera_speed, robot_first, robot_speed, lag, dt_s)[0]
                       for lag in lags])
    if not np.any(np.isfinite(scores)):
        raise CalibrationError(
            f"the camera and robot recordings overlap by less than {_MIN_OVERLAP_S:.0f} s at any offset within "
            f"±{max_offset_ms:.0f} ms; record both during the same motion, or widen --max-offset-ms."
        )
    peak = int(np.nanargmax(scores))
    if peak in (0, len(lags) - 1):
        raise CalibrationError(
            f"the best match lies at the edge of the ±{max_offset_ms:.0f} ms search window; widen --max-offset-ms."
        )
    before, at, after = scores[peak - 1:peak + 2]
    curvature = before - 2.0 * at + after
    # Vertex of the parabola through the three scores around the peak, in grid steps.
    shift = 0.5 * (before - after) / curvature if np.isfinite(curvature) and curvature < 0 else 0.0
    _, overlap_s = _pearson_at_lag(camera_first, camera_speed, robot_first, robot_speed, lags[peak], dt_s)
    return TimeOffsetResult(float(1000.0 * (lags[peak] + shift) * dt_s), float(at), overlap_s, grid_hz)


def _checked(stream: str, t_s, positions) -> tuple[np.ndarray, np.ndarray]:
    t_s = np.asarray(t_s, dtype=float).ravel()
    positions = np.asarray(positions, dtype=float)
    positions = positions.reshape(len(positions), -1)
    if len(t_s) != len(positions):
        raise CalibrationError(f"the {stream} stream has {len(t_s)} stamps but {len(positions)} positions; "
                               "give one position per stamp.")
    if len(t_s) < 10:
        raise CalibrationError(f"the {stream} stream has {len(t_s)} samples; record at least a few seconds of motion.")
    if not np.all(np.isfinite(t_s)) or not np.all(np.isfinite(positions)):
        raise CalibrationError(f"the {stream} stream holds NaN or inf values; drop those rows first.")
    order = np.argsort(t_s, kind="stable")
    t_s, positions = t_s[order], positions[order]
    keep = np.concatenate([[True], np.diff(t_s) > 0])  # a repeated stamp carries no timing information
    return t_s[keep], positions[keep]


def _speed_on_grid(t_s: np.ndarray, positions: np.ndarray, t0_s: float, dt_s: float,
                   window: int) -> tuple[int, np.ndarray]:
    """Speed on grid points t0 + k*dt over the stream's span: (first k, speeds, NaN in gaps)."""
    first = int(np.ceil((t_s[0] - t0_s) / dt_s))
    last = int(np.floor((t_s[-1] - t0_s) / dt_s))
    grid_t_s = t0_s + np.arange(first, last + 1) * dt_s
    resampled = np.column_stack([np.interp(grid_t_s, t_s, column) for column in positions.T])
    speed = np.linalg.norm(np.gradient(resampled, dt_s, axis=0), axis=1)
    # Same moving average on both streams: it shifts neither, so the lag is untouched.
    speed = np.convolve(speed, np.ones(window) / window, mode="same")
    interval = np.median(np.diff(t_s))
    after = np.searchsorted(t_s, grid_t_s).clip(1, len(t_s) - 1)
    nearest = np.minimum(np.abs(grid_t_s - t_s[after - 1]), np.abs(t_s[after] - grid_t_s))
    speed[nearest > _GAP_INTERVALS * interval] = np.nan
    return first, speed


def _pearson_at_lag(camera_first: int, camera_speed: np.ndarray, robot_first: int, robot_speed: np.ndarray,
                    lag: int, dt_s: float) -> tuple[float, float]:
    """Correlation of camera speed at k with robot speed at k - lag, and the overlap in seconds."""
    start = max(camera_first, robot_first + lag)
    stop = min(camera_first + len(camera_speed), robot_first + lag + len(robot_speed))
    if stop <= start:
        return np.nan, 0.0
    camera = camera_speed[start - camera_first:stop - camera_first]
    robot = robot_speed[start - robot_first - lag:stop - robot_first - lag]
    valid = np.isfinite(camera) & np.isfinite(robot)
    overlap_s = float(valid.sum() * dt_s)
    if overlap_s < _MIN_OVERLAP_S:
        return np.nan, overlap_s
    camera, robot = camera[valid] - camera[valid].mean(), robot[valid] - robot[valid].mean()
    denominator = np.sqrt(np.sum(camera**2) * np.sum(robot**2))
    return (float(np.sum(camera * robot) / denominator) if denominator > 0 else np.nan), overlap_s
