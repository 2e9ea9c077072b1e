"""``robot-rl record-demos CONFIG --episodes N``: teleoperate the task, keep the successful episodes as demos.

A person drives through a `drivers/teleop` device (SpaceMouse, gamepad, keyboard); in simulation and
tests `--device scripted` lets the task's scripted expert hold the device. Each kept episode goes to
``RUN/demos/`` (the .npz format the learner loads as demonstrations, see `robot_rl/episodes.py`);
``--bag DIR`` also writes every step as a ROS 2 bag (MCAP storage, standard messages).

While the device is idle or silent the arm holds still: a recording never moves on its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from drivers.arms.base import now_ns
from drivers.teleop.base import InterventionDevice, TeleopReading

DEVICES = ("scripted", "spacemouse", "gamepad", "keyboard")
STALE_READING_MS = 200.0  # a reading older than this is a silent device (as in the intervention arbiter)
BAG_TOPICS = {  # topic -> standard message type
    "/robot_rl/observation/state": "std_msgs/msg/Float32MultiArray",
    "/robot_rl/action": "std_msgs/msg/Float32MultiArray",
    "/robot_rl/teleop/twist": "geometry_msgs/msg/TwistStamped",
    "/robot_rl/reward": "std_msgs/msg/Float32",
    "/robot_rl/success": "std_msgs/msg/Bool",
}


class ScriptedTeleop(InterventionDevice):
    """The task's scripted expert holding a teleop device (simulation): twists in m/s, gripper +-1.

    ``buttons(env) -> tuple[bool, ...]`` says which buttons it holds (record-rewards: the success button).
    """

    name = "scripted"

    def __init__(self, env, adapter, noise_std: float = 0.0, seed: int = 0,
                 buttons: Callable[[object], tuple[bool, ...]] | None = None):
        from robot_rl.envs import make_expert

        self.env, self.adapter, self.buttons = env, adapter, buttons
        self.expert = make_expert(env)
        self.noise_std, self.rng = noise_std, np.random.default_rng(seed)

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self) -> TeleopReading:
        action = np.asarray(self.expert.act(), np.float32)
        if self.noise_std > 0:
            action[:3] = np.clip(action[:3] + self.rng.normal(0.0, self.noise_std, 3), -1.0, 1.0)
        twist, gripper = self.adapter.to_twist(action)
        buttons = self.buttons(self.env) if self.buttons is not None else ()
        return TeleopReading(now_ns(), twist, gripper, True, tuple(buttons), self.name)


def make_teleop_device(name: str, env, adapter, path: str | None = None, noise_std: float = 0.0, seed: int = 0,
                       buttons=None) -> InterventionDevice:
    if name == "scripted":
        return ScriptedTeleop(env, adapter, noise_std, seed, buttons)
    from drivers.teleop import Gamepad, Keyboard, SpaceMouse

    if name not in DEVICES:
        raise ValueError(f"unknown device '{name}': choose one of {', '.join(DEVICES)}.")
    return {"spacemouse": SpaceMouse, "gamepad": Gamepad, "keyboard": Keyboard}[name](path)


def teleop_action(reading: TeleopReading, previous: np.ndarray, adapter) -> np.ndarray:
    """The device's command in env units; hold still when it is idle, silent or broken."""
    fresh = now_ns() - reading.stamp_ns <= STALE_READING_MS * 1e6
    usable = fresh and reading.engaged and np.all(np.isfinite(reading.twist)) and np.isfinite(reading.gripper)
    return adapter.to_action(reading, previous) if usable else adapter.safe_action(previous)


class BagRecorder:
    """Teleoperated steps as a ROS 2 bag with MCAP storage (written with `rosbags`, no ROS needed)."""

    def __init__(self, path: str | Path, image_keys=()):
        try:
            from rosbags.rosbag2 import StoragePlugin, Writer
            from rosbags.typesys import Stores, get_typestore
        except ImportError:
            raise ImportError("--bag needs the rosbags package: pip install rosbags") from None
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists already: pass a new --bag path.")
        self.store = get_typestore(Stores.ROS2_HUMBLE)
        self.types = self.store.types
        self.writer = Writer(self.path, version=8, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        topics = {**BAG_TOPICS, **{f"/robot_rl/camera/{k}/image_raw": "sensor_msgs/msg/Image" for k in image_keys}}
        self.connections = {t: self.writer.add_connection(t, m, typestore=self.store) for t, m in topics.items()}
        self.t0_ns = now_ns()

    def _header(self, stamp_ns: int, frame_id: str = "base"):
        Time = self.types["builtin_interfaces/msg/Time"]
        return self.types["std_msgs/msg/Header"](stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9),
                                                 frame_id=frame_id)

    def _write(self, topic: str, stamp_ns: int, msg) -> None:
        connection = self.connections[topic]
        self.writer.write(connection, stamp_ns, self.store.serialize_cdr(msg, connection.msgtype))

    def _floats(self, values) -> object:
        layout = self.types["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
        return self.types["std_msgs/msg/Float32MultiArray"](layout=layout, data=np.asarray(values, np.float32))

    def write_step(self, obs: dict, action: np.ndarray, reward: float, success: bool, reading: TeleopReading,
                   stamp_ns: int | None = None) -> None:
        stamp_ns = stamp_ns if stamp_ns is not None else now_ns()
        self._write("/robot_rl/observation/state", stamp_ns, self._floats(obs["state"]))
        self._write("/robot_rl/action", stamp_ns, self._floats(action))
        Vector3 = self.types["geometry_msgs/msg/Vector3"]
        twist = self.types["geometry_msgs/msg/Twist"](linear=Vector3(*map(float, reading.twist[:3])),
                                                      angular=Vector3(*map(float, reading.twist[3:])))
        self._write("/robot_rl/teleop/twist", stamp_ns,
                    self.types["geometry_msgs/msg/TwistStamped"](header=self._header(reading.stamp_ns), twist=twist))
        self._write("/robot_rl/reward", stamp_ns, self.types["std_msgs/msg/Float32"](data=float(reward)))
        self._write("/robot_rl/success", stamp_ns, self.types["std_msgs/msg/Bool"](data=bool(success)))
        for key, image in obs.items():
            if key == "state":
                continue
            height, width = image.shape[:2]
            msg = self.types["sensor_msgs/msg/Image"](header=self._header(stamp_ns, key), height=height, width=width,
                                                      encoding="rgb8", is_bigendian=0, step=3 * width,
                                                      data=np.ascontiguousarray(image).reshape(-1))
            self._write(f"/robot_rl/camera/{key}/image_raw", stamp_ns, msg)

    def close(self) -> None:
        self.writer.close()


def pace(next_step_s: float, period_s: float | None) -> float:
    """A person drives at the control rate; the scripted device does not wait."""
    if period_s is None:
        return next_step_s
    delay = next_step_s - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    return max(next_step_s + period_s, time.monotonic())


def record_demos(config_path, episodes: int, run_dir=None, make_device: Callable | None = None,
                 device_name: str = "scripted", device_path: str | None = None, noise_std: float = 0.0,
                 bag: str | Path | None = None, max_attempts: int | None = None, log=print) -> dict:
    """Teleoperate until ``episodes`` successful episodes are in RUN/demos/; failed ones are dropped.

    ``make_device(env, adapter)`` builds another device than ``device_name`` (tests: an operator script).
    """
    from robot_rl.envs import action_bounds, is_success, make_env, normalize_action
    from robot_rl.episodes import EpisodeWriter, episode_paths, write_episode
    from robot_rl.intervention import make_teleop_adapter
    from robot_rl.session import prepare_run
    from robot_rl.spaces import flatten_obs, obs_spec_from_space

    run, config = prepare_run(config_path, run_dir)
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    adapter = make_teleop_adapter(env)
    device = (make_device(env, adapter) if make_device is not None
              else make_teleop_device(device_name, env, adapter, device_path, noise_std, config.seed))
    period_s = None if isinstance(device, ScriptedTeleop) else adapter.control_period_s
    recorder = BagRecorder(bag, spec.image_keys) if bag else None
    kept = len(episode_paths(run.demos))
    first, attempts, max_attempts = kept, 0, max_attempts or 5 * episodes + 10
    device.connect()
    try:
        while kept - first < episodes and attempts < max_attempts:
            raw, _ = env.reset(seed=config.seed + 700_000 + attempts)
            attempts += 1
            obs = flatten_obs(spec, raw)
            writer = EpisodeWriter()
            writer.start(obs)
            previous, success, next_step_s = adapter.safe_action(np.array([0, 0, 0, -1.0])), False, time.monotonic()
            while True:
                next_step_s = pace(next_step_s, period_s)
                reading = device.read()
                action = teleop_action(reading, previous, adapter)
                raw, reward, terminated, truncated, info = env.step(action)
                previous = action
                stored_action = normalize_action(action, low, high)
                writer.step(stored_action, reward, terminated, truncated, flatten_obs(spec, raw))
                success = bool(is_success(info)) or success
                if recorder is not None:
                    recorder.write_step(obs, stored_action, reward, bool(is_success(info)), reading)
                obs = flatten_obs(spec, raw)
                if terminated or truncated:
                    break
            if success:
                write_episode(run.demos, kept, writer.arrays())
                kept += 1
            log(f"episode {attempts}: {'kept' if success else 'dropped (no success)'}; {kept - first}/{episodes} kept")
    finally:
        device.close()
        env.close()
        if recorder is not None:
            recorder.close()
    summary = {"run_dir": str(run.root), "demos": str(run.demos), "kept": kept - first, "attempts": attempts,
               "bag": str(bag) if bag else None}
    if kept - first < episodes:
        raise RuntimeError(f"only {kept - first} of {attempts} teleoperated episodes succeeded; record more with "
                           f"`robot-rl record-demos` on the same run directory (kept episodes stay).")
    return summary


def run(args) -> int:
    import json

    from drivers.errors import DeviceError
    from robot_rl.config import ConfigError

    try:
        summary = record_demos(args.config, args.episodes, args.run_dir, device_name=args.device,
                               device_path=args.device_path, noise_std=args.noise, bag=args.bag)
    except (ConfigError, DeviceError, FileExistsError, RuntimeError, ValueError) as err:
        print(f"record-demos: {err}")
        return 2
    print(json.dumps(summary))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("record-demos", help="teleoperate the task and keep the successful episodes as demos")
    parser.add_argument("config", help="session file, e.g. launch/sim_pick_cube_hil.yaml")
    parser.add_argument("--episodes", type=int, required=True, help="successful episodes to keep")
    parser.add_argument("--run-dir", help="run directory (default runs/<name>); demos go to RUN/demos/")
    parser.add_argument("--device", choices=DEVICES, default="spacemouse",
                        help="teleop device; 'scripted': the task's scripted expert drives (simulation)")
    parser.add_argument("--device-path", help="gamepad/keyboard event file or SpaceMouse HID path (default: autodetect)")
    parser.add_argument("--noise", type=float, default=0.0, help="scripted device only: Gaussian noise on its moves")
    parser.add_argument("--bag", help="also write every step to this ROS 2 bag (a new folder, MCAP storage)")
    parser.set_defaults(func=run)
