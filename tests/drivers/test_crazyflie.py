"""Crazyflie driver without a radio: CRTP bytes, geofence, dead-man timeout and emergency stop.

The radio is the only thing replaced: ``RadioRecorder`` stands where the Crazyradio would be and
records the bytes that would go on air; everything above it is the real driver.
"""

import struct
import threading
import time

import numpy as np
import pytest

from drivers.errors import MissingSDKError
from drivers.quadrotor import CflibLink, CrazyflieQuadrotor, EmergencyStopped, QuadrotorSafety, QuadrotorSafetyConfig
from drivers.quadrotor import crtp
from drivers.quadrotor.base import QuadrotorState


class RadioRecorder:
    def __init__(self):
        self.sent: list[bytes] = []
        self.on_state = None
        self.lock = threading.Lock()

    def open(self, on_state):
        self.on_state = on_state

    def send(self, packet):
        with self.lock:
            self.sent.append(packet.to_bytes())

    def close(self):
        pass

    def packets(self):
        with self.lock:
            return list(self.sent)


def state(position=(0.0, 0.0, 0.5), roll=0.0, pitch=0.0):
    return QuadrotorState(time.monotonic_ns(), position, (0.0, 0.0, 0.0), roll, pitch, 0.0)


STOP = bytes([0x7C, 0x00])  # port 7, link bits, channel 0; TYPE_STOP
EMERGENCY = bytes([0x6D, 0x03])  # port 6, channel 1; EMERGENCY_STOP


def test_packet_bytes_match_the_firmware_layouts():
    # header = port << 4 | 0b1100 | channel, as cflib's CRTPPacket.set_header builds it
    assert crtp.stop_setpoint().to_bytes() == STOP
    assert crtp.emergency_stop().to_bytes() == EMERGENCY
    assert crtp.emergency_stop_watchdog().to_bytes() == bytes([0x6D, 0x04])
    assert crtp.position_setpoint(0.5, -0.25, 1.0, 90.0).to_bytes() == bytes([0x7C, 7]) + struct.pack("<ffff", 0.5, -0.25, 1.0, 90.0)
    assert crtp.velocity_world_setpoint(0.1, 0.2, 0.3, 4.0).to_bytes() == bytes([0x7C, 1]) + struct.pack("<ffff", 0.1, 0.2, 0.3, 4.0)
    assert crtp.hover_setpoint(0.1, 0.0, 0.0, 0.4).to_bytes()[:2] == bytes([0x7C, 5])
    assert crtp.notify_setpoint_stop(100).to_bytes() == bytes([0x7D, 0]) + struct.pack("<I", 100)
    # legacy commander: port 3, pitch negated, thrust uint16 last; 1 + 14 bytes
    legacy = crtp.attitude_setpoint(1.0, 2.0, 3.0, 40000).to_bytes()
    assert legacy == bytes([0x3C]) + struct.pack("<fffH", 1.0, -2.0, 3.0, 40000) and len(legacy) == 15
    assert all(len(p.payload) <= crtp.MAX_PAYLOAD_BYTES for p in (crtp.position_setpoint(0, 0, 0, 0),))


def test_packets_refuse_nan_and_out_of_range_thrust():
    with pytest.raises(ValueError, match="NaN"):
        crtp.position_setpoint(float("nan"), 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="thrust"):
        crtp.attitude_setpoint(0.0, 0.0, 0.0, 70000)


def test_geofence_clamps_setpoints_and_flags_states():
    safety = QuadrotorSafety(QuadrotorSafetyConfig(geofence_min_m=(-1, -1, 0), geofence_max_m=(1, 1, 1.5), geofence_margin_m=0.3))
    np.testing.assert_allclose(safety.clamp_position([2.0, -0.5, 3.0]), [1.0, -0.5, 1.5])
    assert safety.clamped_setpoints == 1
    # at the +x wall an outward velocity component is dropped, then the speed is capped at 1 m/s
    np.testing.assert_allclose(safety.clamp_velocity([0.5, 3.0, 0.0], position_m=[1.0, 0.0, 0.5]), [0.0, 1.0, 0.0])
    assert safety.state_violation([0.0, 0.0, 0.5], 10.0, -5.0) is None
    assert safety.state_violation([1.2, 0.0, 0.5], 0.0, 0.0) is None  # inside the 0.3 m margin
    assert "geofence" in safety.state_violation([1.4, 0.0, 0.5], 0.0, 0.0)
    assert "tilt" in safety.state_violation([0.0, 0.0, 0.5], 80.0, 0.0)
    assert "finite" in safety.state_violation([np.nan, 0.0, 0.5], 0.0, 0.0)
    assert not safety.deadman_expired(None, 10**12)  # nothing to guard before the first setpoint
    assert safety.deadman_expired(0, 251_000_000) and not safety.deadman_expired(0, 249_000_000)


def test_setpoints_go_out_clamped_and_deadman_sends_stop():
    radio = RadioRecorder()
    config = QuadrotorSafetyConfig(deadman_timeout_ms=50.0)
    with CrazyflieQuadrotor(safety=config, link=radio, watchdog_period_ms=2.0) as quad:
        quad.send_position([0.2, 0.0, 5.0])
        assert radio.packets()[-1] == crtp.position_setpoint(0.2, 0.0, 1.5, 0.0).to_bytes()
        for _ in range(5):  # streaming faster than the timeout keeps the dead-man quiet
            quad.send_position([0.2, 0.0, 1.0])
            time.sleep(0.01)
        assert quad.deadman_stops == 0
        time.sleep(0.2)  # the operator's loop stops: one stop setpoint, not a stream of them
        assert quad.deadman_stops == 1
        assert radio.packets()[-1] == STOP
    assert radio.packets()[-2:] == [STOP, crtp.notify_setpoint_stop().to_bytes()]  # close stops the motors


def test_state_outside_the_fence_latches_the_emergency_stop():
    radio = RadioRecorder()
    with CrazyflieQuadrotor(link=radio) as quad:
        radio.on_state(state((0.0, 0.0, 0.5)))
        quad.send_velocity([0.1, 0.0, 0.0])
        assert quad.emergency_reason is None
        radio.on_state(state((0.0, 0.0, 2.5)))  # 1 m above a 1.5 m ceiling
        assert "geofence" in quad.emergency_reason
        assert radio.packets().count(EMERGENCY) == 1
        radio.on_state(state((0.0, 0.0, 2.6)))  # latched: sent once
        assert radio.packets().count(EMERGENCY) == 1
        with pytest.raises(EmergencyStopped, match="power-cycle"):
            quad.send_position([0.0, 0.0, 1.0])
    assert radio.packets()[-1] == EMERGENCY  # nothing else goes out after an emergency stop


def test_emergency_stop_on_request_and_on_tilt():
    radio = RadioRecorder()
    with CrazyflieQuadrotor(link=radio) as quad:
        radio.on_state(state(roll=85.0))
        assert "tilt" in quad.emergency_reason and radio.packets() == [EMERGENCY]
    radio = RadioRecorder()
    with CrazyflieQuadrotor(link=radio) as quad:
        quad.emergency_stop("operator")
        assert quad.emergency_reason == "operator" and radio.packets() == [EMERGENCY]


def test_missing_cflib_is_one_clear_sentence():
    try:
        import cflib  # noqa: F401
    except ImportError:
        with pytest.raises(MissingSDKError, match="pip install cflib"):
            CflibLink().open(lambda s: None)
    else:
        pytest.skip("cflib is installed; the missing-SDK message cannot be exercised")
