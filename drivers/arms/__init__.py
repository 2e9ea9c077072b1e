"""Arms: the `Arm` interface and its backends (`FrankyArm`, `MujocoArm`), imported lazily."""

from drivers.arms.base import Arm, ArmFault, ArmMode, ArmState, Gripper

__all__ = ["Arm", "ArmFault", "ArmMode", "ArmState", "Gripper", "FrankyArm", "MujocoArm"]


def __getattr__(name: str):
    # Backends pull in franky / mujoco; import them only when asked for.
    if name == "FrankyArm":
        from drivers.arms.franky_arm import FrankyArm

        return FrankyArm
    if name == "MujocoArm":
        from drivers.arms.mujoco_arm import MujocoArm

        return MujocoArm
    raise AttributeError(name)
