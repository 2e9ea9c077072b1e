"""Checkpoints from one slow demonstration lap (teleoperated or scripted), as in FastRLAP."""

from __future__ import annotations

import numpy as np

from sim2real.rc_car.dynamics import CarFleet
from sim2real.rc_car.expert import SLOW, PurePursuit
from sim2real.rc_car.params import CarParams
from sim2real.rc_car.track import Track


def extract_checkpoints(positions_m: np.ndarray, spacing_m: float) -> np.ndarray:
    """(K, 2) points every ``spacing_m`` of driven distance along a lap's (T, 2) positions.

    The last checkpoint is the lap's end (the start/finish), so reaching it closes the lap.
    """
    positions_m = np.asarray(positions_m, float)
    if positions_m.ndim != 2 or positions_m.shape[1] != 2 or len(positions_m) < 2:
        raise ValueError("a demonstration lap needs (T, 2) positions in metres with T >= 2.")
    driven = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(positions_m, axis=0), axis=1))])
    if driven[-1] < 2 * spacing_m:
        raise ValueError(f"the demonstration lap is {driven[-1]:.2f} m long; drive a whole lap (more than {2 * spacing_m} m).")
    count = max(2, int(round(driven[-1] / spacing_m)))
    marks = np.linspace(0.0, driven[-1], count + 1)[1:]  # evenly spread, ending at the lap's end
    return np.stack([np.interp(marks, driven, positions_m[:, 0]), np.interp(marks, driven, positions_m[:, 1])], axis=1)


def scripted_slow_lap(track: Track, car: CarParams = CarParams(), max_steps: int = 2000) -> tuple[np.ndarray, float]:
    """Positions (T, 2) of one slow pure-pursuit lap from the start line, and its duration in seconds."""
    fleet = CarFleet(track, 1, car)
    fleet.place(0, *track.pose_at(0.0))
    driver = PurePursuit(track, car, SLOW)
    positions, travelled = [(fleet.x_m[0], fleet.y_m[0])], 0.0
    for _ in range(max_steps):
        s_before = fleet.track_s_m[0]
        fleet.step(driver.command(fleet.x_m[0], fleet.y_m[0], fleet.yaw_rad[0], fleet.vx_m_s[0])[None])
        travelled += (fleet.track_s_m[0] - s_before + track.length_m / 2) % track.length_m - track.length_m / 2
        positions.append((fleet.x_m[0], fleet.y_m[0]))
        if travelled >= track.length_m:
            break
    else:
        raise RuntimeError(f"the slow scripted lap did not finish on track {track.name!r} in {max_steps} steps.")
    return np.array(positions), fleet.sim_time_s
