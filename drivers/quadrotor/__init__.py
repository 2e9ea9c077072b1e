"""Quadrotor drivers: the Crazyflie over CRTP (cflib imported lazily) and its safety logic."""

from drivers.quadrotor.base import Quadrotor, QuadrotorState
from drivers.quadrotor.crazyflie import CflibLink, CrazyflieQuadrotor, EmergencyStopped
from drivers.quadrotor.safety import QuadrotorSafety, QuadrotorSafetyConfig

__all__ = ["CflibLink", "CrazyflieQuadrotor", "EmergencyStopped", "Quadrotor", "QuadrotorSafety",
           "QuadrotorSafetyConfig", "QuadrotorState"]
