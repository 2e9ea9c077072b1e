"""Pure-pursuit drivers on the track centre line: a slow one (the demonstration lap that checkpoints
come from) and a fast one tuned for lap time (the reference the learned policy is measured against).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim2real.rc_car.params import CarParams
from sim2real.rc_car.track import Track


@dataclass(frozen=True)
class PursuitTuning:
    lookahead_m: float = 0.5
    lookahead_gain_s: float = 0.25  # lookahead grows with speed
    lateral_accel_m_s2: float | None = None  # None: constant `cruise_speed_m_s`
    brake_m_s2: float = 5.0
    cruise_speed_m_s: float = 1.2
    speed_preview_s: float = 0.3  # read the speed profile ahead to cover ESC lag


SLOW = PursuitTuning()
# Grid-searched for lap time on each track (lateral accel × lookahead × gain × preview, see bench/rc_car.py).
FAST = {
    "loop": PursuitTuning(lookahead_m=0.8, lookahead_gain_s=0.3, lateral_accel_m_s2=7.0, brake_m_s2=6.0, speed_preview_s=0.3),
    "hairpin": PursuitTuning(lookahead_m=0.8, lookahead_gain_s=0.3, lateral_accel_m_s2=6.0, brake_m_s2=6.0, speed_preview_s=0.3),
    "chicane": PursuitTuning(lookahead_m=0.8, lookahead_gain_s=0.3, lateral_accel_m_s2=7.0, brake_m_s2=6.0, speed_preview_s=0.3),
}


def speed_profile(track: Track, max_speed_m_s: float, lateral_accel_m_s2: float, brake_m_s2: float) -> np.ndarray:
    """Fastest speed per centre-line sample: curvature limit, then braking distance before each corner."""
    v = np.minimum(max_speed_m_s, np.sqrt(lateral_accel_m_s2 / np.maximum(np.abs(track.curvature_1_m), 1e-3)))
    ds = track.length_m / len(v)
    for _ in range(2):  # two passes around the loop settle the wrap-around
        for i in range(len(v) - 1, -1, -1):
            v[i] = min(v[i], np.sqrt(v[(i + 1) % len(v)] ** 2 + 2 * brake_m_s2 * ds))
    return v


class PurePursuit:
    def __init__(self, track: Track, car: CarParams, tuning: PursuitTuning = SLOW):
        self.track, self.car, self.tuning = track, car, tuning
        if tuning.lateral_accel_m_s2 is None:
            self.profile_m_s = np.full(len(track.s_m), tuning.cruise_speed_m_s)
        else:
            self.profile_m_s = speed_profile(track, car.max_speed_m_s, tuning.lateral_accel_m_s2, tuning.brake_m_s2)

    def command(self, x_m: float, y_m: float, yaw_rad: float, speed_m_s: float) -> np.ndarray:
        """[speed, steer] action in [-1, 1] for one car."""
        t = self.tuning
        _, s, _ = self.track.project(np.array([[x_m, y_m]]))
        lookahead = t.lookahead_m + t.lookahead_gain_s * abs(speed_m_s)
        target = self.track.centre_m[self.track.index_at(s[0] + lookahead)]
        dx, dy = target[0] - x_m, target[1] - y_m
        c, sn = np.cos(yaw_rad), np.sin(yaw_rad)
        fwd, left = c * dx + sn * dy, -sn * dx + c * dy
        alpha = np.arctan2(left, fwd)
        steer = np.arctan2(2 * self.car.wheelbase_m * np.sin(alpha), np.hypot(fwd, left))
        speed = self.profile_m_s[self.track.index_at(s[0] + t.speed_preview_s * max(speed_m_s, 0.0))]
        return np.clip([speed / self.car.max_speed_m_s, steer / self.car.max_steer_rad], -1.0, 1.0).astype(np.float32)


class RCCarExpert:
    """Scripted expert for ``RCCarRaceEnv`` (constructed with the unwrapped env): ``act(obs)`` → action.

    ``mode="slow"`` drives the slow demonstration lap (FastRLAP starts from one such lap);
    ``mode="fast"`` is the speed-tuned reference whose best lap sets the 1.3× bar.
    """

    def __init__(self, env, mode: str = "slow"):
        if mode not in ("slow", "fast"):
            raise ValueError(f"expert mode must be 'slow' or 'fast', not {mode!r}.")
        self.env = env
        tuning = SLOW if mode == "slow" else FAST.get(env.track.name, PursuitTuning(lateral_accel_m_s2=6.0))
        self.driver = PurePursuit(env.track, env.car_params, tuning)

    def act(self, obs=None) -> np.ndarray:
        f = self.env.fleet
        return self.driver.command(f.x_m[0], f.y_m[0], f.yaw_rad[0], f.vx_m_s[0])
