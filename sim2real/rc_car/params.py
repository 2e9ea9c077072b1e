"""Physical parameters of a 1/10 RC car (Traxxas-class, as in FastRLAP) and its egocentric camera."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CarParams:
    mass_kg: float = 2.6
    front_axle_m: float = 0.15  # centre of gravity to front axle
    rear_axle_m: float = 0.18
    yaw_inertia_kg_m2: float = 0.04  # m (l² + w²) / 12 for a 0.4 × 0.2 m body
    half_width_m: float = 0.10  # collision footprint against the track edge
    max_speed_m_s: float = 5.0  # speed action +1
    max_reverse_m_s: float = 2.0  # speed action -1
    max_steer_rad: float = 0.40
    steer_rate_rad_s: float = 4.0  # servo slew limit
    steer_lag_s: float = 0.05  # servo first-order lag
    speed_lag_s: float = 0.15  # ESC speed-setpoint first-order lag
    speed_gain_1_s: float = 8.0  # ESC speed loop: acceleration per m/s of speed error
    max_accel_m_s2: float = 6.0
    max_brake_m_s2: float = 8.0
    friction: float = 0.75  # tyre-road friction coefficient (carpet / smooth concrete)
    tire_b: float = 10.0  # Pacejka-lite stiffness factor: peak grip at ≈0.2 rad slip
    tire_c: float = 1.4  # Pacejka shape factor (lateral)
    rolling_drag_1_s: float = 0.05
    dynamic_blend_m_s: tuple[float, float] = (1.0, 2.0)  # kinematic below, dynamic (tyre slip) above
    physics_dt_s: float = 0.01
    control_dt_s: float = 0.1  # FastRLAP: 10 Hz

    @property
    def wheelbase_m(self) -> float:
        return self.front_axle_m + self.rear_axle_m


@dataclass(frozen=True)
class CameraParams:
    height_px: int = 64
    width_px: int = 64
    mount_height_m: float = 0.20
    pitch_down_deg: float = 20.0
    horizontal_fov_deg: float = 100.0
    max_range_m: float = 10.0  # ground farther than this shows as haze
