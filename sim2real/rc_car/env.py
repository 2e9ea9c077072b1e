"""FastRLAP-style racing task: ``RCCarRaceEnv`` (one car) and ``VecRCCar`` (N cars, physics + camera).

One step = 0.1 s (10 Hz). Action [speed, steer] in [-1, 1]; the executed action moves at most
``action_rate_limit`` per step from the previous one. Reward = velocity toward the next
checkpoint (as a share of top speed, per step) minus ``crash_penalty`` on a crash. A crash or a
stuck car triggers the recovery manoeuvre inside ``step`` (1 s reverse, random steer); those
steps are the env's, not the policy's, and are counted in ``info``. The env never terminates
(practice is continuous); it truncates at ``max_episode_steps``.

info keys: ``laps``, ``lap_time_s`` (only on the step that completes a lap), ``best_lap_time_s``,
``checkpoint_index``, ``recovery`` ("crash" / "stuck" / ""), ``recovery_steps`` (this step),
``recoveries`` (this episode), ``sim_time_s`` (this episode, recovery included), ``applied_action``,
``is_success`` (at least one lap this episode), ``lap_times_s`` / ``lap_steps`` / ``lap_end_sim_s``
(this episode's laps: time, step count and episode sim time at the lap's end), ``episode_steps``.
``episode_metrics(final_infos)`` turns the last info of episodes into the report's lap figures.
"""

from __future__ import annotations

from dataclasses import fields, replace

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sim2real.rc_car.camera import GroundCamera
from sim2real.rc_car.checkpoints import extract_checkpoints, scripted_slow_lap
from sim2real.rc_car.dynamics import CarFleet
from sim2real.rc_car.params import CameraParams, CarParams
from sim2real.rc_car.recovery import CrashStuckDetector, RecoveryConfig, recovery_actions
from sim2real.rc_car.track import DEFAULT_TRACK, get_track

LOOKAHEAD_M = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)  # centre-line points in the car frame (state mode)
LAP_TIME_BAR = 1.3  # the learning target: a lap within 1.3x of the fast scripted expert's best
_CHECKPOINT_CACHE: dict[tuple, np.ndarray] = {}
_REFERENCE_LAP_CACHE: dict[tuple, float] = {}


def demo_checkpoints(track_name: str, spacing_m: float, car: CarParams) -> np.ndarray:
    key = (track_name, spacing_m, car)
    if key not in _CHECKPOINT_CACHE:
        positions, _ = scripted_slow_lap(get_track(track_name), car)
        _CHECKPOINT_CACHE[key] = extract_checkpoints(positions, spacing_m)
    return _CHECKPOINT_CACHE[key]


def _params_with(overrides: dict | None) -> CarParams:
    if not overrides:
        return CarParams()
    valid = {f.name for f in fields(CarParams)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(f"unknown car parameter(s) {unknown}; use fields of CarParams: {sorted(valid)}.")
    return replace(CarParams(), **overrides)


class RCCarRaceEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    control_hz = 10.0

    def __init__(
        self,
        track: str = DEFAULT_TRACK,
        obs_mode: str = "pixels",
        image_size: int = 64,
        max_episode_steps: int = 600,
        checkpoint_spacing_m: float = 2.0,
        checkpoint_radius_m: float = 0.8,
        checkpoints: list | None = None,
        crash_penalty: float = 1.0,
        action_rate_limit: float = 0.2,
        random_start: bool = False,
        stuck_window_steps: int = 20,
        reverse_steps: int = 10,
        car: dict | None = None,
        render_mode: str | None = None,
    ):
        if obs_mode not in ("state", "pixels"):
            raise ValueError(f"obs_mode must be 'state' or 'pixels', not {obs_mode!r}.")
        self.track = get_track(track)
        self.car_params = _params_with(car)
        self.obs_mode, self.render_mode = obs_mode, render_mode
        self.max_episode_steps, self.crash_penalty = max_episode_steps, crash_penalty
        self.action_rate_limit, self.random_start = action_rate_limit, random_start
        self.checkpoint_radius_m = checkpoint_radius_m
        self.checkpoints_m = (np.asarray(checkpoints, float).reshape(-1, 2) if checkpoints is not None
                              else demo_checkpoints(track, checkpoint_spacing_m, self.car_params))
        self.recovery = RecoveryConfig(stuck_window_steps=stuck_window_steps, reverse_steps=reverse_steps)
        self.detector = CrashStuckDetector(self.recovery)
        self.fleet = CarFleet(self.track, 1, self.car_params)
        self.camera = GroundCamera(self.track, CameraParams(height_px=image_size, width_px=image_size))
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        state_dim = 13 + (1 + 2 * len(LOOKAHEAD_M) if obs_mode == "state" else 0)
        state_space = spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)
        if obs_mode == "state":
            self.observation_space = state_space
        else:
            camera = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
            self.observation_space = spaces.Dict({"state": state_space, "camera": camera})
        self._rng = np.random.default_rng()
        self._reset_episode()

    def _reset_episode(self) -> None:
        self.prev_action = np.zeros(2, np.float32)
        self.steps, self.laps, self.recoveries = 0, 0, 0
        self.next_checkpoint, self.best_lap_time_s, self.lap_start_s = 0, None, 0.0
        self.lap_times_s, self.lap_steps, self.lap_end_sim_s = [], [], []
        self.detector.reset()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._reset_episode()
        self.fleet.sim_time_s = 0.0
        s0 = self._rng.uniform(0, self.track.length_m) if self.random_start else 0.0
        self.fleet.place(0, *self.track.pose_at(s0))
        if self.random_start:  # aim at the first checkpoint ahead; the first lap starts at the finish line
            ahead = (self.track.project(self.checkpoints_m)[1] - s0) % self.track.length_m
            self.next_checkpoint, self.lap_start_s = int(np.argmin(ahead)), None
        return self._observation(), self._info(recovery="", recovery_steps=0)

    def step(self, action):
        action = np.clip(np.asarray(action, np.float32).reshape(2), -1.0, 1.0)
        applied = np.clip(action, self.prev_action - self.action_rate_limit, self.prev_action + self.action_rate_limit)
        self.prev_action = applied
        reward, progress_m, lap_time = self._drive(applied)
        f = self.fleet
        hit_edge = bool(f.impact_m_s[0] > self.recovery.crash_impact_m_s)
        event = self.detector.update(progress_m, float(f.peak_accel_m_s2[0]), hit_edge) or ""
        recovery_steps = 0
        if event:
            if event == "crash":
                reward -= self.crash_penalty
            for reverse in recovery_actions(self._rng, self.recovery):
                _, _, lap_during = self._drive(reverse)
                lap_time = lap_time or lap_during
                recovery_steps += 1
            self.prev_action = np.zeros(2, np.float32)  # the manoeuvre ends braked, steering centred
            self.detector.reset()
            self.recoveries += 1
        self.steps += 1
        info = self._info(recovery=event, recovery_steps=recovery_steps, applied_action=applied)
        if lap_time is not None:
            info["lap_time_s"] = lap_time
        return self._observation(), float(reward), False, self.steps >= self.max_episode_steps, info

    def _drive(self, action: np.ndarray) -> tuple[float, float, float | None]:
        """One control period: (reward toward the checkpoint, track progress_m, lap time if a lap closed)."""
        f, track = self.fleet, self.track
        start = np.array([f.x_m[0], f.y_m[0]])
        s_before = f.track_s_m[0]
        target = self.checkpoints_m[self.next_checkpoint]
        f.step(action[None])
        end = np.array([f.x_m[0], f.y_m[0]])
        toward_m = np.linalg.norm(target - start) - np.linalg.norm(target - end)
        reward = toward_m / (self.car_params.control_dt_s * self.car_params.max_speed_m_s)
        progress_m = (f.track_s_m[0] - s_before + track.length_m / 2) % track.length_m - track.length_m / 2
        lap_time = None
        while np.linalg.norm(self.checkpoints_m[self.next_checkpoint] - end) < self.checkpoint_radius_m:
            self.next_checkpoint += 1
            if self.next_checkpoint == len(self.checkpoints_m):
                self.next_checkpoint = 0
                if self.lap_start_s is not None:
                    lap_time = f.sim_time_s - self.lap_start_s
                    self.laps += 1
                    self.best_lap_time_s = min(self.best_lap_time_s or np.inf, lap_time)
                    self.lap_times_s.append(float(lap_time))
                    self.lap_steps.append(self.steps + 1)  # `step` counts this step after driving it
                    self.lap_end_sim_s.append(float(f.sim_time_s))
                self.lap_start_s = f.sim_time_s
                break
        return float(reward), float(progress_m), lap_time

    def _body_frame(self, points_m: np.ndarray) -> np.ndarray:
        f = self.fleet
        c, s = np.cos(f.yaw_rad[0]), np.sin(f.yaw_rad[0])
        d = points_m - np.array([f.x_m[0], f.y_m[0]])
        return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)

    def _observation(self):
        f, p = self.fleet, self.car_params
        k = len(self.checkpoints_m)
        goals = self._body_frame(self.checkpoints_m[[self.next_checkpoint, (self.next_checkpoint + 1) % k]])
        imu = [f.vx_m_s[0] / p.max_speed_m_s, f.vy_m_s[0], f.yaw_rate_rad_s[0] / 4.0,
               f.accel_body_m_s2[0, 0] / 10.0, f.accel_body_m_s2[0, 1] / 10.0]
        actuators = [f.speed_setpoint_m_s[0] / p.max_speed_m_s, f.steer_rad[0] / p.max_steer_rad]
        state = [*imu, *actuators, *self.prev_action, *(goals.ravel() / 4.0)]
        if self.obs_mode == "state":
            ahead = self.track.centre_m[self.track.index_at(f.track_s_m[0] + np.array(LOOKAHEAD_M))]
            state += [f.lateral_m[0] / self.track.half_width_m, *(self._body_frame(ahead).ravel() / 4.0)]
            return np.asarray(state, np.float32)
        camera = self.camera.render(f.x_m, f.y_m, f.yaw_rad)[0]
        return {"state": np.asarray(state, np.float32), "camera": camera}

    def _info(self, recovery: str, recovery_steps: int, applied_action=None) -> dict:
        return {
            "laps": self.laps,
            "best_lap_time_s": self.best_lap_time_s,
            "checkpoint_index": self.next_checkpoint,
            "recovery": recovery,
            "recovery_steps": recovery_steps,
            "recoveries": self.recoveries,
            "sim_time_s": self.fleet.sim_time_s,
            "applied_action": self.prev_action.copy() if applied_action is None else applied_action,
            "is_success": self.laps >= 1,
            "lap_times_s": list(self.lap_times_s),
            "lap_steps": list(self.lap_steps),
            "lap_end_sim_s": list(self.lap_end_sim_s),
            "episode_steps": self.steps,
        }

    def reference_lap_time_s(self) -> float:
        """Best lap of the fast scripted expert on this track and car (cached; the 1.3x bar's base)."""
        key = (self.track.name, self.car_params, tuple(map(tuple, self.checkpoints_m)), self.checkpoint_radius_m)
        if key not in _REFERENCE_LAP_CACHE:
            from sim2real.rc_car.expert import RCCarExpert

            env = RCCarRaceEnv(self.track.name, "state", max_episode_steps=400, checkpoints=self.checkpoints_m,
                               checkpoint_radius_m=self.checkpoint_radius_m, car=self.car_params.__dict__)
            expert = RCCarExpert(env, "fast")
            obs, _ = env.reset(seed=0)
            for _ in range(env.max_episode_steps):
                obs, _, _, _, info = env.step(expert.act(obs))
            _REFERENCE_LAP_CACHE[key] = float(min(info["lap_times_s"]))
        return _REFERENCE_LAP_CACHE[key]

    def episode_metrics(self, final_infos: list[dict]) -> dict:
        """Lap figures over consecutive episodes, from each one's last ``info``.

        ``*_step`` figures count env steps from the first of these episodes' start, ``*_sim_s``
        simulated seconds (recovery manoeuvres included).
        """
        reference_s = self.reference_lap_time_s()
        laps = [t for info in final_infos for t in info["lap_times_s"]]
        recoveries = sum(int(info["recoveries"]) for info in final_infos)
        out = {"laps": len(laps), "best_lap_time_s": min(laps) if laps else None,
               "mean_lap_time_s": float(np.mean(laps)) if laps else None, "recoveries": recoveries,
               "recoveries_per_lap": recoveries / len(laps) if laps else None,
               "expert_best_lap_s": reference_s, "lap_time_bar": LAP_TIME_BAR,
               "lap_time_ratio": min(laps) / reference_s if laps else None,
               "sim_time_s": float(sum(info["sim_time_s"] for info in final_infos)),
               "first_lap_step": None, "first_lap_sim_s": None,
               "lap_within_bar_step": None, "lap_within_bar_sim_s": None}
        steps_before, sim_before = 0, 0.0
        for info in final_infos:
            for lap_s, step, end_s in zip(info["lap_times_s"], info["lap_steps"], info["lap_end_sim_s"]):
                for name, reached in (("first_lap", True), ("lap_within_bar", lap_s <= LAP_TIME_BAR * reference_s)):
                    if reached and out[f"{name}_step"] is None:
                        out[f"{name}_step"], out[f"{name}_sim_s"] = steps_before + step, sim_before + end_s
            steps_before += int(info["episode_steps"])
            sim_before += float(info["sim_time_s"])
        return out

    def render(self):
        f = self.fleet
        return self.camera.render(f.x_m, f.y_m, f.yaw_rad)[0]


class VecRCCar:
    """N cars on one track, physics and camera only (for throughput benchmarks and batched rollouts)."""

    def __init__(self, n: int, track: str = DEFAULT_TRACK, image_size: int = 64, car: dict | None = None, seed: int = 0):
        self.track = get_track(track)
        self.fleet = CarFleet(self.track, n, _params_with(car))
        self.camera = GroundCamera(self.track, CameraParams(height_px=image_size, width_px=image_size))
        self.rng = np.random.default_rng(seed)
        self.n = n

    def reset(self) -> np.ndarray:
        s = self.rng.uniform(0, self.track.length_m, self.n)
        i = self.track.index_at(s)
        self.fleet.place(slice(None), *self.track.centre_m[i].T, self.track.heading_rad[i])
        return self.camera.render(self.fleet.x_m, self.fleet.y_m, self.fleet.yaw_rad)

    def step(self, actions: np.ndarray, render: bool = True) -> np.ndarray | None:
        self.fleet.step(actions)
        return self.camera.render(self.fleet.x_m, self.fleet.y_m, self.fleet.yaw_rad) if render else None
