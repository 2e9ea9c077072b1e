"""N RC cars on one track: dynamic bicycle model, actuator lag and limits, walls at the track edges.

Model (per car, body frame x forward / y left):
  - steering: first-order servo lag and slew limit toward ``steer_action · max_steer_rad``;
  - speed: first-order ESC setpoint lag, then a proportional speed loop bounded by the
    acceleration/brake limits and by friction (``μ g``);
  - lateral: Pacejka-lite tyres ``F = μ F_z sin(C atan(B α))`` on front and rear axles (slip);
    below ``dynamic_blend_m_s[0]`` lateral velocity and yaw rate follow the kinematic bicycle
    (the dynamic model is singular at standstill), blended linearly up to ``[1]``;
  - walls: a car whose footprint leaves the track is put back on the edge and loses its
    velocity into the wall (inelastic) and some speed along it (Coulomb friction): a hit shows
    as an acceleration spike, grazing does not.
Integration: semi-implicit Euler at ``physics_dt_s`` for one ``control_dt_s`` per ``step``.
"""

from __future__ import annotations

import numpy as np

from sim2real.rc_car.params import CarParams
from sim2real.rc_car.track import Track

GRAVITY_M_S2 = 9.81
WALL_FRICTION = 0.3  # Coulomb: tangential speed lost = this × speed into the wall


class CarFleet:
    def __init__(self, track: Track, n: int = 1, params: CarParams = CarParams()):
        self.track, self.n, self.p = track, n, params
        self.substeps = max(1, int(round(params.control_dt_s / params.physics_dt_s)))
        self.dt_s = params.control_dt_s / self.substeps
        z = lambda: np.zeros(n)  # noqa: E731
        self.x_m, self.y_m, self.yaw_rad = z(), z(), z()
        self.vx_m_s, self.vy_m_s, self.yaw_rate_rad_s = z(), z(), z()
        self.steer_rad, self.speed_setpoint_m_s = z(), z()
        self.accel_body_m_s2 = np.zeros((n, 2))  # IMU-like: mean over the last control step
        self.peak_accel_m_s2 = z()  # largest substep acceleration in the last control step
        self.contact = np.zeros(n, bool)  # touched a track edge in the last control step
        self.impact_m_s = z()  # largest speed into an edge in the last control step (0: grazing or none)
        self.track_s_m, self.lateral_m = z(), z()
        self.sim_time_s = 0.0

    def place(self, which, x_m, y_m, yaw_rad, speed_m_s=0.0) -> None:
        """Put cars ``which`` (index or mask) at a pose, at rest apart from a forward speed."""
        self.x_m[which], self.y_m[which], self.yaw_rad[which] = x_m, y_m, yaw_rad
        self.vx_m_s[which], self.vy_m_s[which], self.yaw_rate_rad_s[which] = speed_m_s, 0.0, 0.0
        self.steer_rad[which], self.speed_setpoint_m_s[which] = 0.0, speed_m_s
        self.accel_body_m_s2[which], self.peak_accel_m_s2[which], self.contact[which] = 0.0, 0.0, False
        self.impact_m_s[which] = 0.0
        _, s, lat = self.track.project(np.stack([self.x_m, self.y_m], axis=1))
        self.track_s_m[:], self.lateral_m[:] = s, lat

    def world_velocity(self) -> np.ndarray:
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        return np.stack([c * self.vx_m_s - s * self.vy_m_s, s * self.vx_m_s + c * self.vy_m_s], axis=1)

    def step(self, action: np.ndarray) -> None:
        """Advance one control period with ``action`` (N, 2) = [speed, steer] in [-1, 1] held."""
        p = self.p
        action = np.clip(np.asarray(action, float).reshape(self.n, 2), -1.0, 1.0)
        speed_target = np.where(action[:, 0] >= 0, action[:, 0] * p.max_speed_m_s, action[:, 0] * p.max_reverse_m_s)
        steer_target = action[:, 1] * p.max_steer_rad
        dt, length = self.dt_s, p.wheelbase_m
        load_front = p.mass_kg * GRAVITY_M_S2 * p.rear_axle_m / length
        load_rear = p.mass_kg * GRAVITY_M_S2 * p.front_axle_m / length
        grip_accel = p.friction * GRAVITY_M_S2
        v_world_start = self.world_velocity()
        self.peak_accel_m_s2[:] = 0.0
        self.impact_m_s[:] = 0.0
        self.contact[:] = False
        for _ in range(self.substeps):
            v_before = self.world_velocity()
            steer_step = np.clip((steer_target - self.steer_rad) * dt / p.steer_lag_s, -p.steer_rate_rad_s * dt, p.steer_rate_rad_s * dt)
            self.steer_rad += steer_step
            self.speed_setpoint_m_s += (speed_target - self.speed_setpoint_m_s) * (dt / p.speed_lag_s)
            vx, vy, r, delta = self.vx_m_s, self.vy_m_s, self.yaw_rate_rad_s, self.steer_rad
            ax = np.clip(p.speed_gain_1_s * (self.speed_setpoint_m_s - vx), -p.max_brake_m_s2, p.max_accel_m_s2)
            ax = np.clip(ax, -grip_accel, grip_accel) - p.rolling_drag_1_s * vx
            vx_safe = np.maximum(vx, 0.5)
            slip_front = delta - np.arctan2(vy + p.front_axle_m * r, vx_safe)
            slip_rear = -np.arctan2(vy - p.rear_axle_m * r, vx_safe)
            force_front = p.friction * load_front * np.sin(p.tire_c * np.arctan(p.tire_b * slip_front))
            force_rear = p.friction * load_rear * np.sin(p.tire_c * np.arctan(p.tire_b * slip_rear))
            cos_d, sin_d = np.cos(delta), np.sin(delta)
            lo, hi = p.dynamic_blend_m_s
            blend = np.clip((vx - lo) / (hi - lo), 0.0, 1.0)
            vx_new = vx + dt * (ax + blend * (vy * r - force_front * sin_d / p.mass_kg))
            vy_dyn = vy + dt * ((force_rear + force_front * cos_d) / p.mass_kg - vx * r)
            r_dyn = r + dt * (p.front_axle_m * force_front * cos_d - p.rear_axle_m * force_rear) / p.yaw_inertia_kg_m2
            tan_d = np.tan(delta)
            self.vx_m_s = vx_new
            self.vy_m_s = blend * vy_dyn + (1 - blend) * vx_new * p.rear_axle_m * tan_d / length
            self.yaw_rate_rad_s = blend * r_dyn + (1 - blend) * vx_new * tan_d / length
            self.yaw_rad = np.angle(np.exp(1j * (self.yaw_rad + dt * self.yaw_rate_rad_s)))
            v_world = self.world_velocity()
            self.x_m = self.x_m + dt * v_world[:, 0]
            self.y_m = self.y_m + dt * v_world[:, 1]
            self._collide_walls(v_world)
            accel = np.linalg.norm(self.world_velocity() - v_before, axis=1) / dt
            np.maximum(self.peak_accel_m_s2, accel, out=self.peak_accel_m_s2)
        mean_accel = (self.world_velocity() - v_world_start) / p.control_dt_s
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        self.accel_body_m_s2[:, 0] = c * mean_accel[:, 0] + s * mean_accel[:, 1]
        self.accel_body_m_s2[:, 1] = -s * mean_accel[:, 0] + c * mean_accel[:, 1]
        self.sim_time_s += p.control_dt_s

    def _collide_walls(self, v_world: np.ndarray) -> None:
        index, s, lateral = self.track.project(np.stack([self.x_m, self.y_m], axis=1))
        self.track_s_m, self.lateral_m = s, lateral
        limit = self.track.half_width_m - self.p.half_width_m
        hit = np.abs(lateral) > limit
        if not hit.any():
            return
        outward = np.sign(lateral[hit])[:, None] * self.track.normal[index[hit]]
        push = (np.abs(lateral[hit]) - limit)[:, None] * outward
        self.x_m[hit] -= push[:, 0]
        self.y_m[hit] -= push[:, 1]
        self.lateral_m[hit] = np.sign(lateral[hit]) * limit
        v = v_world[hit]
        into_wall = np.maximum(np.einsum("ij,ij->i", v, outward), 0.0)
        v = v - into_wall[:, None] * outward
        tangential = np.linalg.norm(v, axis=1)
        v *= (1 - np.minimum(1.0, WALL_FRICTION * into_wall / np.maximum(tangential, 1e-9)))[:, None]
        c, sn = np.cos(self.yaw_rad[hit]), np.sin(self.yaw_rad[hit])
        self.vx_m_s[hit] = c * v[:, 0] + sn * v[:, 1]
        self.vy_m_s[hit] = -sn * v[:, 0] + c * v[:, 1]
        self.yaw_rate_rad_s[hit] *= 1 - np.minimum(1.0, into_wall)  # a hard hit stops the rotation
        self.impact_m_s[hit] = np.maximum(self.impact_m_s[hit], into_wall)
        self.contact |= hit
