"""Driver overheads on this machine, one JSON line: safety filter and HID decoding cost per call,
and the SafeArm watchdog around the MuJoCo arm (ms from the last command to hold, and to standstill)."""

from __future__ import annotations

import json
import struct
import time

import numpy as np


def per_call_us(fn, calls: int = 5000) -> float:
    samples = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter_ns()
        fn(i)
        samples[i] = time.perf_counter_ns() - t0
    return float(np.median(samples) / 1e3)


def main() -> None:
    from drivers.arms.mujoco_arm import MujocoArm
    from drivers.safety import SafeArm, SafetyConfig, SafetyFilter
    from drivers.teleop.spacemouse import SpaceMouseDecoder

    config = SafetyConfig()
    filt = SafetyFilter(config)
    filt.reset(np.array([0.5, 0.0, 0.4]), np.array([1.0, 0, 0, 0]))
    target, quat = np.array([0.6, 0.1, 0.3]), np.array([1.0, 0, 0, 0])
    filter_us = per_call_us(lambda i: filt.pose(target, quat, stamp_ns=(i + 1) * 100_000_000))

    decoder = SpaceMouseDecoder()
    report = bytes([1]) + struct.pack("<6h", 120, -40, 200, 10, -300, 50)
    decode_us = per_call_us(lambda i: (decoder.feed(report, i), decoder.reading(i)))

    with SafeArm(MujocoArm(), config.model_copy(update={"command_timeout_ms": 200.0})) as arm:
        home = arm.state()
        for k in range(10):
            arm.command_pose(home.ee_pos_m + [0.0, 0.01 * (k + 1), 0.0], home.ee_quat_xyzw)
            time.sleep(0.1)
        t_last = time.monotonic()
        while arm.watchdog.timeouts == 0 and time.monotonic() - t_last < 2.0:
            time.sleep(0.001)
        while np.linalg.norm(arm.state().ee_twist[:3]) > 0.005 and time.monotonic() - t_last < 3.0:
            time.sleep(0.002)
        still_ms = (time.monotonic() - t_last) * 1e3
        watchdog = arm.watchdog

    print(json.dumps({
        "bench": "drivers",
        "safety_filter_pose_us_p50": round(filter_us, 1),
        "spacemouse_decode_us_p50": round(decode_us, 1),
        "watchdog_timeout_ms": 200.0,
        "watchdog_fired_ms_after_last_command": round(watchdog.last_fire_delay_ms, 1),
        "hold_returned_ms_after_last_command": round(watchdog.last_latency_ms, 1),
        "mujoco_arm_still_ms_after_last_command": round(still_ms, 1),
    }))


if __name__ == "__main__":
    main()
