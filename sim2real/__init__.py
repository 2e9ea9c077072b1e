"""MuJoCo scenes and sim tasks. Importing this registers the gymnasium ids.

Entry points are strings, so registering imports neither mujoco nor the task modules.
PickCube has no gymnasium TimeLimit: the env truncates itself at `max_episode_steps`
so that `terminated` and `truncated` are never both true.
"""

from gymnasium.envs.registration import register, registry

_PICK_CUBE = "sim2real.pick_cube.env:PickCubeEnv"
RC_CAR_CAMERA_ENV = "robot_rl/RCCarRaceEmbedding-v0"  # RC car camera through its frozen pretrained encoder (CPU path)

if "robot_rl/PickCube-v0" not in registry:
    register(id="robot_rl/PickCube-v0", entry_point=_PICK_CUBE, kwargs={"obs_mode": "state"})
if "robot_rl/PickCubePixels-v0" not in registry:
    register(id="robot_rl/PickCubePixels-v0", entry_point=_PICK_CUBE, kwargs={"obs_mode": "pixels"})
if "robot_rl/QuadrotorHover-v0" not in registry:
    register(
        id="robot_rl/QuadrotorHover-v0",
        entry_point="sim2real.quadrotor.env:QuadrotorHoverEnv",
        vector_entry_point="sim2real.quadrotor.env:VecQuadrotorHover",
    )
if "robot_rl/RCCarRace-v0" not in registry:
    register(id="robot_rl/RCCarRace-v0", entry_point="sim2real.rc_car.env:RCCarRaceEnv", kwargs={"obs_mode": "pixels"})
if "robot_rl/RCCarRaceState-v0" not in registry:
    register(id="robot_rl/RCCarRaceState-v0", entry_point="sim2real.rc_car.env:RCCarRaceEnv", kwargs={"obs_mode": "state"})
if RC_CAR_CAMERA_ENV not in registry:
    register(id=RC_CAR_CAMERA_ENV, entry_point="sim2real.rc_car.embedding:make_embedding_env")
