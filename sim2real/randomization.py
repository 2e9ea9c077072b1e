"""Domain randomization wrappers for the MuJoCo sim tasks (written against the pick-cube scene).

Each wrapper redraws its values at every `reset`, from its own seeded generator, by writing into
`env.unwrapped.model` before the env resets (the env's `mj_forward` then propagates them).
Setting `enabled = False` writes the nominal values back; so does `close`.

- `DynamicsRandomization`: cube mass (inertia scaled with it), contact friction of the cube, the
  fingers and the table, arm joint damping, arm motor gain (torque-constant error).
- `VisualRandomization`: light positions and colours, table/cube material colour (which tints the
  table's texture), camera position and orientation jitter.
- `SensorNoise`: additive Gaussian noise on the state observation (no model access).

Actuator lag: MuJoCo cannot add an activation state after compiling, so the scene must be built
with it (`PickCubeEnv(actuator_lag_s=...)`: `dyntype="filter"` on the arm motors); `DynamicsRandomization`
then draws the time constant (`actuator_dynprm[:, 0]`) with `actuator_lag_scale`.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class _Field:
    """One randomized slice of a model array: `rows` of `model.<name>[:, columns]`."""

    name: str
    rows: np.ndarray
    columns: slice | int | None = None

    def view(self, model):
        array = getattr(model, self.name)
        return array[self.rows] if self.columns is None else array[self.rows, self.columns]

    def write(self, model, values) -> None:
        array = getattr(model, self.name)
        if self.columns is None:
            array[self.rows] = values
        else:
            array[self.rows, self.columns] = values


def _check_range(name: str, bounds, nonnegative: bool = True) -> tuple[float, float]:
    low, high = (float(b) for b in bounds)
    if not low <= high or (nonnegative and low < 0):
        raise ValueError(f"{name} must be a (low, high) pair with 0 <= low <= high, got {bounds}.")
    return low, high


class _ModelRandomization(gym.Wrapper):
    """Keeps the nominal values of `_fields`, redraws them at reset with `_draw`, restores when disabled."""

    _SALT = 0

    def __init__(self, env: gym.Env, seed: int | None):
        super().__init__(env)
        self.model = env.unwrapped.model
        self._rng = np.random.default_rng(seed)
        self._fields: dict[str, _Field] = {}
        self._nominal: dict[str, np.ndarray] = {}
        self._enabled = True
        self.current: dict[str, np.ndarray] = {}

    def _add(self, key: str, field: _Field) -> None:
        self._fields[key] = field
        self._nominal[key] = np.array(field.view(self.model), copy=True)

    def nominal(self, key: str) -> np.ndarray:
        return self._nominal[key].copy()

    @property
    def enabled(self) -> bool:
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        if not self._enabled:
            self.restore()

    def restore(self) -> None:
        for key, field in self._fields.items():
            field.write(self.model, self._nominal[key])
        self.current = {k: v.copy() for k, v in self._nominal.items()}

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, self._SALT])  # own stream, reproducible per episode seed
        self.restore()
        if self._enabled:
            for key, values in self._draw(self._rng).items():
                self._fields[key].write(self.model, values)
                self.current[key] = np.array(values, copy=True)
        return self.env.reset(seed=seed, options=options)

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self):
        self.restore()
        super().close()


def _ids(model, kind: str, names) -> np.ndarray:
    return np.array([getattr(model, kind)(n).id for n in names], np.int64)


class DynamicsRandomization(_ModelRandomization):
    """Scales cube mass, contact friction, arm damping and arm motor gain by uniform factors.

    Each `*_scale` is a (low, high) range of multiplicative factors drawn per episode; the
    defaults are moderate sim-to-real gaps (tens of percent), not measured ones.
    """

    _SALT = 0xD1

    def __init__(self, env: gym.Env, *, cube_mass_scale=(0.5, 1.5), friction_scale=(0.7, 1.3),
                 joint_damping_scale=(0.5, 2.0), motor_gain_scale=(0.9, 1.1), seed: int | None = None,
                 cube_body: str = "cube", friction_bodies=("cube", "left_finger", "right_finger"),
                 friction_geoms=("table",), arm_joints=None, actuator_lag_scale=None):
        super().__init__(env, seed)
        model = self.model
        self.ranges = {
            "cube_mass_kg": _check_range("cube_mass_scale", cube_mass_scale),
            "friction": _check_range("friction_scale", friction_scale),
            "joint_damping": _check_range("joint_damping_scale", joint_damping_scale),
            "motor_gain": _check_range("motor_gain_scale", motor_gain_scale),
        }
        if arm_joints is None:
            from sim2real.pick_cube.scene import ARM_JOINTS

            arm_joints = ARM_JOINTS
        cube = _ids(model, "body", [cube_body])
        body_ids = set(_ids(model, "body", friction_bodies).tolist())
        geoms = [g for g in range(model.ngeom) if int(model.geom_bodyid[g]) in body_ids]
        geoms += _ids(model, "geom", friction_geoms).tolist()
        dofs = np.array([model.jnt_dofadr[model.joint(j).id] for j in arm_joints], np.int64)
        motors = _ids(model, "actuator", arm_joints)
        self._add("cube_mass_kg", _Field("body_mass", cube))
        self._add("cube_inertia", _Field("body_inertia", cube))
        self._add("friction", _Field("geom_friction", np.array(sorted(geoms)), 0))
        self._add("joint_damping", _Field("dof_damping", dofs))
        self._add("motor_gain", _Field("actuator_gainprm", motors, 0))
        if actuator_lag_scale is not None:
            import mujoco

            if not (model.actuator_dyntype[motors] == mujoco.mjtDyn.mjDYN_FILTER).all():
                raise ValueError("actuator_lag_scale needs arm motors with a lag: build the env with actuator_lag_s > 0.")
            self.ranges["actuator_lag"] = _check_range("actuator_lag_scale", actuator_lag_scale)
            self._add("actuator_lag", _Field("actuator_dynprm", motors, 0))

    def _draw(self, rng):
        factors = {key: rng.uniform(*bounds) for key, bounds in self.ranges.items()}
        draw = {key: self._nominal[key] * f for key, f in factors.items()}
        draw["cube_inertia"] = self._nominal["cube_inertia"] * factors["cube_mass_kg"]  # same shape, denser
        return draw


def _small_rotations(rng, count: int, max_angle_rad: float) -> np.ndarray:
    """`count` unit quaternions (w, x, y, z) about random axes, angles uniform in [0, max_angle_rad]."""
    axes = rng.standard_normal((count, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    half = 0.5 * rng.uniform(0.0, max_angle_rad, (count, 1))
    return np.hstack([np.cos(half), np.sin(half) * axes])


def _quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = a.T
    bw, bx, by, bz = b.T
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=1)


class VisualRandomization(_ModelRandomization):
    """Jitters lights (position, colour), material colours and camera poses at each reset."""

    _SALT = 0x71

    def __init__(self, env: gym.Env, *, light_position_jitter_m: float = 0.5, light_colour_scale=(0.6, 1.4),
                 material_colour_jitter: float = 0.15, camera_position_jitter_m: float = 0.01,
                 camera_rotation_jitter_rad: float = 0.03, materials=("table", "cube"), cameras=None,
                 seed: int | None = None):
        super().__init__(env, seed)
        model = self.model
        for name, value in (("light_position_jitter_m", light_position_jitter_m),
                            ("material_colour_jitter", material_colour_jitter),
                            ("camera_position_jitter_m", camera_position_jitter_m),
                            ("camera_rotation_jitter_rad", camera_rotation_jitter_rad)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value}.")
        self.light_position_jitter_m = light_position_jitter_m
        self.light_colour_range = _check_range("light_colour_scale", light_colour_scale)
        self.material_colour_jitter = material_colour_jitter
        self.camera_position_jitter_m = camera_position_jitter_m
        self.camera_rotation_jitter_rad = camera_rotation_jitter_rad
        lights = np.arange(model.nlight)
        cams = np.arange(model.ncam) if cameras is None else _ids(model, "camera", cameras)
        self._add("light_pos", _Field("light_pos", lights))
        self._add("light_diffuse", _Field("light_diffuse", lights))
        self._add("material_rgb", _Field("mat_rgba", _ids(model, "material", materials), slice(0, 3)))
        self._add("cam_pos", _Field("cam_pos", cams))
        self._add("cam_quat", _Field("cam_quat", cams))

    def _draw(self, rng):
        nominal = self._nominal
        light_pos = nominal["light_pos"] + rng.uniform(-1, 1, nominal["light_pos"].shape) * self.light_position_jitter_m
        diffuse = nominal["light_diffuse"] * rng.uniform(*self.light_colour_range, nominal["light_diffuse"].shape)
        rgb = nominal["material_rgb"] + rng.uniform(-1, 1, nominal["material_rgb"].shape) * self.material_colour_jitter
        cam_pos = nominal["cam_pos"] + rng.uniform(-1, 1, nominal["cam_pos"].shape) * self.camera_position_jitter_m
        turn = _small_rotations(rng, len(nominal["cam_quat"]), self.camera_rotation_jitter_rad)
        return {
            "light_pos": light_pos,
            "light_diffuse": np.clip(diffuse, 0.0, 1.0),
            "material_rgb": np.clip(rgb, 0.0, 1.0),
            "cam_pos": cam_pos,
            "cam_quat": _quat_multiply(nominal["cam_quat"], turn),  # a turn in the camera's own frame
        }


class SensorNoise(gym.ObservationWrapper):
    """Adds N(0, std^2) to the state observation (a Box obs, or the "state" entry of a Dict obs).

    `std` is one number or one per state element, in the observation's units.
    """

    def __init__(self, env: gym.Env, std, *, seed: int | None = None, key: str = "state"):
        super().__init__(env)
        space = env.observation_space
        self.key = key if isinstance(space, gym.spaces.Dict) else None
        state_space = space[key] if self.key is not None else space
        self.std = np.broadcast_to(np.asarray(std, np.float64), state_space.shape).copy()
        if not np.all(self.std >= 0):
            raise ValueError(f"std must be >= 0, got {std}.")
        self.enabled = True
        self._rng = np.random.default_rng(seed)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, 0x5E])
        return super().reset(seed=seed, options=options)

    def observation(self, observation):
        if not self.enabled:
            return observation
        state = observation[self.key] if self.key is not None else observation
        noisy = (state + self._rng.standard_normal(state.shape) * self.std).astype(state.dtype)
        if self.key is None:
            return noisy
        return {**observation, self.key: noisy}
