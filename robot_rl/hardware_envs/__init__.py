"""Gymnasium tasks that run on hardware through the `drivers` interfaces (or their simulated twins).

Importing this registers the ids, so `gym.make("robot_rl.hardware_envs:robot_rl/FrankySimReach-v0")`
works in any process; the entry points are strings, so registering imports neither franky nor mujoco.
"""

from gymnasium.envs.registration import register, registry

FRANKY_REACH = "robot_rl.hardware_envs.franky_reach:FrankyReachEnv"

if "robot_rl/FrankySimReach-v0" not in registry:
    register(id="robot_rl/FrankySimReach-v0", entry_point=FRANKY_REACH, kwargs={"start_sim_server": True})
if "robot_rl/FrankyReach-v0" not in registry:
    register(id="robot_rl/FrankyReach-v0", entry_point=FRANKY_REACH, kwargs={"start_sim_server": False})
