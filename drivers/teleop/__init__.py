"""Intervention devices: SpaceMouse (raw HID), gamepad (Linux joystick), keyboard (evdev), scripted expert."""

from drivers.teleop.base import InterventionDevice, TeleopReading
from drivers.teleop.gamepad import Gamepad
from drivers.teleop.keyboard import Keyboard
from drivers.teleop.scripted import ScriptedDevice
from drivers.teleop.spacemouse import SpaceMouse

__all__ = ["InterventionDevice", "TeleopReading", "SpaceMouse", "Gamepad", "Keyboard", "ScriptedDevice"]
