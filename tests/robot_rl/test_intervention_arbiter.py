"""InterventionArbiter: engage, hold, hand-back, toggle, stale device data, and the routing of each mode."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.teleop.base import TeleopReading, idle_reading
from robot_rl.intervention import (
    BC,
    DEMO,
    ONLINE,
    InterventionArbiter,
    InterventionConfig,
    InterventionTransition,
    PickCubeTeleopAdapter,
    route_transition,
)

MS = 1_000_000
PERIOD_NS = 100 * MS  # 10 Hz control
POLICY = np.array([0.2, -0.2, 0.1, -1.0], np.float32)


def arbiter(**overrides) -> InterventionArbiter:
    config = InterventionConfig(**{"hold_s": 0.3, "stale_timeout_ms": 250, **overrides})
    return InterventionArbiter(config, PickCubeTeleopAdapter(control_period_s=0.1, max_step_m=0.03))


def moving(stamp_ns: int, vx_m_s: float = 0.15, gripper: float = 0.0, buttons=()) -> TeleopReading:
    return TeleopReading(stamp_ns, np.array([vx_m_s, 0, 0, 0, 0, 0.0]), gripper, True, tuple(buttons), "spacemouse")


def test_policy_drives_while_device_is_idle():
    arb = arbiter()
    for k in range(5):
        out = arb.step(POLICY, idle_reading("spacemouse", k * PERIOD_NS), k * PERIOD_NS)
        assert not out.intervened and not out.takeover and out.device == ""
        np.testing.assert_array_equal(out.executed_action, POLICY)


def test_motion_below_deadband_does_not_engage():
    arb = arbiter(deadband_m_s=0.01)
    out = arb.step(POLICY, moving(0, vx_m_s=0.005), 0)
    assert not out.intervened


def test_engage_maps_twist_to_ee_delta_and_keeps_gripper():
    arb = arbiter()
    arb.step(POLICY, idle_reading("spacemouse", 0), 0)
    out = arb.step(POLICY, moving(PERIOD_NS, vx_m_s=0.15), PERIOD_NS)
    assert out.intervened and out.takeover and out.device == "spacemouse"
    # 0.15 m/s for 0.1 s = 1.5 cm = half of the 3 cm max step; gripper 0 keeps the last command (open).
    np.testing.assert_allclose(out.executed_action, [0.5, 0.0, 0.0, -1.0], atol=1e-6)
    out = arb.step(POLICY, moving(2 * PERIOD_NS, gripper=1.0), 2 * PERIOD_NS)
    assert out.intervened and not out.takeover and out.executed_action[3] == 1.0
    assert arb.takeovers == 1


def test_hold_time_then_hand_back():
    arb = arbiter()  # hold 0.3 s
    arb.step(POLICY, moving(0), 0)
    outs = [arb.step(POLICY, idle_reading("spacemouse", k * PERIOD_NS), k * PERIOD_NS) for k in range(1, 6)]
    # Input stopped at t=0: the device holds (still, gripper kept) at 0.1 and 0.2 s, hands back at 0.3 s.
    assert [o.intervened for o in outs] == [True, True, False, False, False]
    assert [o.handback for o in outs] == [False, False, True, False, False]
    np.testing.assert_array_equal(outs[0].executed_action, [0, 0, 0, -1])
    np.testing.assert_array_equal(outs[2].executed_action, POLICY)


def test_takeover_button_drives_without_motion():
    arb = arbiter(takeover_button=0)
    reading = TeleopReading(0, np.zeros(6), 0.0, False, (True,), "gamepad")
    out = arb.step(POLICY, reading, 0)
    assert out.intervened and out.takeover
    np.testing.assert_array_equal(out.executed_action, [0, 0, 0, -1])


def test_toggle_latches_until_pressed_again():
    arb = arbiter(toggle_button=1)  # hold 0.3 s does not delay a toggle's hand-back
    press = TeleopReading(0, np.zeros(6), 0.0, False, (False, True), "keyboard")
    release = TeleopReading(0, np.zeros(6), 0.0, False, (False, False), "keyboard")
    stamps = iter(range(0, 100 * PERIOD_NS, PERIOD_NS))

    def step(reading):
        now = next(stamps)
        return arb.step(POLICY, TeleopReading(now, *(getattr(reading, f) for f in ("twist", "gripper", "engaged", "buttons", "device"))), now)

    assert step(press).takeover
    # Held down or released, the latch stays on; a second press (an edge) releases it.
    assert all(step(r).intervened for r in (press, release, release, release))
    out = step(press)
    assert out.handback and not out.intervened
    assert not step(release).intervened


def test_stale_device_mid_intervention_goes_to_safe_state_not_policy():
    arb = arbiter()
    arb.step(POLICY, moving(0, gripper=1.0), 0)  # holding a cube: gripper closed
    last = moving(PERIOD_NS, gripper=1.0)
    arb.step(POLICY, last, PERIOD_NS)
    # The device stops reporting: its newest reading ages past the 250 ms timeout.
    for k in range(2, 8):
        out = arb.step(POLICY, last, k * PERIOD_NS + 200 * MS)
        assert out.safe_state_required and out.device_stale and out.intervened
        np.testing.assert_array_equal(out.executed_action, [0, 0, 0, 1.0])  # still, and the cube stays held
    # Readings again, with the operator's hands off: only now does the policy drive.
    now = 9 * PERIOD_NS
    out = arb.step(POLICY, idle_reading("spacemouse", now), now)
    assert out.handback and not out.intervened and not out.safe_state_required
    np.testing.assert_array_equal(out.executed_action, POLICY)


def test_non_finite_reading_mid_intervention_is_treated_as_a_silent_device():
    arb = arbiter()
    arb.step(POLICY, moving(0), 0)
    broken = TeleopReading(PERIOD_NS, np.array([np.nan, 0, 0, 0, 0, 0]), 0.0, True, (), "spacemouse")
    out = arb.step(POLICY, broken, PERIOD_NS)
    assert out.safe_state_required and np.all(np.isfinite(out.executed_action))


def test_stale_device_while_policy_drives_is_flagged_only():
    arb = arbiter()
    out = arb.step(POLICY, idle_reading("spacemouse", 0), 10 * PERIOD_NS)
    assert out.device_stale and not out.safe_state_required and not out.intervened
    out = arb.step(POLICY, None, 11 * PERIOD_NS)
    assert out.device_stale and not out.intervened


def transition(intervened: bool) -> InterventionTransition:
    executed = np.array([0.5, 0, 0, 1], np.float32) if intervened else POLICY
    return InterventionTransition(obs=np.zeros(3), policy_action=POLICY, executed_action=executed, reward=0.7,
                                  terminated=False, truncated=False, next_obs=np.ones(3), intervened=intervened,
                                  device="spacemouse" if intervened else "", policy_version=12)


def run_episode(mode: str):
    """Route a 6-step episode with an intervention on steps 2-3."""
    arb = arbiter(mode=mode, hold_s=0.0)
    routed = []
    for k in range(6):
        reading = moving(k * PERIOD_NS) if k in (2, 3) else idle_reading("spacemouse", k * PERIOD_NS)
        step = arb.step(POLICY, reading, k * PERIOD_NS)
        record = transition(step.intervened)
        routed.append(route_transition(mode, record, step, arb.config.rlif_penalty))
    return routed


def test_hil_serl_sends_interventions_to_online_and_demo():
    routed = run_episode("hil-serl")
    stores = [[name for name, _ in r] for r in routed]
    assert stores == [[ONLINE], [ONLINE], [ONLINE, DEMO], [ONLINE, DEMO], [ONLINE], [ONLINE]]
    demo = routed[2][1][1]
    assert demo.intervened and demo.device == "spacemouse" and demo.policy_version == 12
    np.testing.assert_array_equal(demo.action, demo.executed_action)
    np.testing.assert_array_equal(demo.policy_action, POLICY)
    assert demo.reward == 0.7  # the task reward is kept


def test_rlif_penalizes_the_takeover_only_and_drops_task_reward():
    routed = run_episode("rlif")
    assert [len(r) for r in routed] == [1, 1, 2, 1, 1, 1]
    rejected, human = routed[2]
    assert rejected[0] == human[0] == ONLINE
    assert rejected[1].reward == -1.0 and rejected[1].terminated
    np.testing.assert_array_equal(rejected[1].action, POLICY)  # the overridden policy action carries the penalty
    assert human[1].reward == 0.0 and human[1].intervened
    np.testing.assert_array_equal(human[1].action, [0.5, 0, 0, 1])
    assert all(t.reward == 0.0 for r in routed for _, t in r if t is not rejected[1])


def test_hg_dagger_keeps_only_intervention_labels():
    routed = run_episode("hg-dagger")
    assert [[name for name, _ in r] for r in routed] == [[], [], [BC], [BC], [], []]


def test_unknown_mode_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="hil-serl, rlif, hg-dagger"):
        route_transition("dagger", transition(False), arbiter().step(POLICY, None, 0))
