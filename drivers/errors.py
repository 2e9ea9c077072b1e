"""Device errors a person can cause or fix: each message is one sentence saying what to do."""

from __future__ import annotations

import importlib
from types import ModuleType


class DeviceError(RuntimeError):
    """Base of every error the drivers raise on purpose; the message names the device and the fix."""


class MissingSDKError(DeviceError):
    """A vendor SDK (Python package or system library) is not installed."""


class DeviceNotFoundError(DeviceError):
    """The device is not connected, or not the one that was asked for (wrong serial, path)."""


class DeviceConnectionError(DeviceError):
    """The device is known but cannot be reached or stopped answering."""


class ArmFaultError(DeviceError):
    """The arm is in a fault state that was not (or could not be) recovered automatically."""


def require(module: str, install_hint: str) -> ModuleType:
    """Import a vendor SDK lazily, turning ImportError into one sentence that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingSDKError(f"Python module '{module}' is not available ({exc}); install it with: {install_hint}.") from None
