"""RC car drivers behind the ``RCCar`` interface: a VESC over serial (pyserial imported lazily) and the sim twin."""

from drivers.rc_car.base import RCCar, RCCarTelemetry
from drivers.rc_car.vesc import VescConfig, VescRCCar

__all__ = ["RCCar", "RCCarTelemetry", "VescConfig", "VescRCCar"]
