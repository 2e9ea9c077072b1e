"""Process settings for a control loop: CPU pinning, SCHED_FIFO, no GC pauses; each reports what it did."""

from __future__ import annotations

import gc
import os


def apply_realtime(cpu: int | None, priority: int | None) -> dict:
    """Pin to ``cpu`` and switch to SCHED_FIFO ``priority`` where permitted; returns what was applied."""
    applied = {"cpu_affinity": "not requested", "scheduler": "SCHED_OTHER (not requested)"}
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
            applied["cpu_affinity"] = [cpu]
        except (OSError, AttributeError) as err:
            applied["cpu_affinity"] = f"not applied ({err})"
    if priority is not None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            applied["scheduler"] = f"SCHED_FIFO {priority}"
        except PermissionError:
            applied["scheduler"] = "SCHED_OTHER (SCHED_FIFO not permitted: run as root or grant CAP_SYS_NICE)"
        except (OSError, AttributeError) as err:
            applied["scheduler"] = f"SCHED_OTHER (SCHED_FIFO failed: {err})"
    return applied


def restore_scheduler() -> None:
    try:
        if os.sched_getscheduler(0) == os.SCHED_FIFO:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (OSError, AttributeError):
        pass


class NoGarbageCollection:
    """Freeze what exists and disable the cyclic collector for the loop: its pauses reach milliseconds."""

    def __enter__(self):
        self._was_enabled = gc.isenabled()
        gc.collect()
        gc.freeze()
        gc.disable()
        return self

    def __exit__(self, *exc):
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()
