"""Human interventions: who drives each step (`InterventionArbiter`) and where its data goes (`route_transition`).

The arbiter is plain Python with the clock passed in, so it is tested step by step without a
device or a thread. Per control step it takes the policy's action and the device's newest
`TeleopReading` and returns the executed action with the record fields every transition keeps:
`policy_action`, `executed_action`, `intervened`, `device`, `policy_version`.

Routing modes (the session chooses one):
- `hil-serl`: every step goes to the online store; intervention steps also go to the demo store,
  which the learner samples 50/50 with the online one (HIL-SERL, Luo et al. 2024).
- `rlif`: the takeover itself is the reward: the policy's rejected action at the takeover state gets
  `rlif_penalty` and ends there (its counterfactual next state is unknown); every other step has
  reward 0, no task reward needed (RLIF, Luo et al. 2023).
- `hg-dagger`: only intervention steps are kept, as behaviour-cloning labels (HG-DAgger, Kelly et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drivers.teleop.base import TeleopReading

ROUTING_MODES = ("hil-serl", "rlif", "hg-dagger")
ONLINE, DEMO, BC = "online", "demo", "bc"


class InterventionConfig(BaseModel):
    """Arbiter and routing settings; the defaults suit a SpaceMouse at a 10 Hz policy."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mode: Literal["hil-serl", "rlif", "hg-dagger"] = "hil-serl"
    deadband_m_s: float = Field(default=0.005, ge=0.0, description="linear speed below this is no input")
    deadband_rad_s: float = Field(default=0.02, ge=0.0, description="angular speed below this is no input")
    hold_s: float = Field(default=0.5, ge=0.0, description="the device keeps control this long after its input stops")
    stale_timeout_ms: float = Field(default=200.0, gt=0.0, description="a reading older than this is a silent device")
    takeover_button: int | None = Field(default=None, ge=0, description="held: the device drives even without motion")
    toggle_button: int | None = Field(default=None, ge=0, description="each press latches / releases the takeover")
    rlif_penalty: float = Field(default=-1.0, description="reward of the policy action the human overrode (RLIF: -1)")


class ScriptedIntervenerSettings(BaseModel):
    """The simulated human (`sim2real.pick_cube.intervener.IntervenerConfig`), as a session file sets it."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    deviation_threshold: float = Field(default=0.5, gt=0.0, description="policy vs expert ee delta, normalized units")
    patience_steps: int = Field(default=2, ge=0, description="steps of drift before the human notices")
    reaction_delay_steps: int = Field(default=2, ge=0, description="steps from noticing to taking over (0.2 s at 10 Hz)")
    agree_steps: int = Field(default=3, ge=0, description="steps the policy must agree before the human hands back")
    max_takeover_steps: int = Field(default=20, ge=0)
    episode_budget_steps: int = Field(default=30, ge=0, description="intervention steps per episode at most")
    session_budget_steps: int | None = Field(default=None, ge=0, description="intervention steps per session at most")


class InterventionSessionConfig(InterventionConfig):
    """The session file's `intervention:` section: routing mode, arbiter settings, and which device intervenes."""

    device: Literal["scripted", "spacemouse", "gamepad", "keyboard"] = Field(
        default="scripted", description="'scripted': the simulated human of a sim task; else a drivers/teleop device")
    device_path: str | None = Field(default=None, description="gamepad/keyboard event file (default: autodetect)")
    scripted: ScriptedIntervenerSettings = Field(default_factory=ScriptedIntervenerSettings)


def make_intervention_device(config: InterventionSessionConfig, env, clock_ns=None):
    """The configured device, not yet connected; the scripted human needs the (pick-cube) env it watches."""
    if config.device == "scripted":
        from sim2real.pick_cube.intervener import IntervenerConfig, ScriptedIntervener

        if not hasattr(env.unwrapped, "max_step_m"):
            raise ValueError(f"intervention.device 'scripted' has a simulated human for pick-cube only, not for "
                             f"{env.spec.id if env.spec else env}; choose spacemouse, gamepad or keyboard.")
        kwargs = {"clock_ns": clock_ns} if clock_ns is not None else {}
        return ScriptedIntervener(env, IntervenerConfig(**config.scripted.model_dump()), **kwargs)
    from drivers.teleop import Gamepad, Keyboard, SpaceMouse

    if config.device == "spacemouse":
        return SpaceMouse(config.device_path)
    return (Gamepad if config.device == "gamepad" else Keyboard)(config.device_path)


def make_teleop_adapter(env) -> "PickCubeTeleopAdapter":
    """Twist -> env action for an env that moves an end effector by `max_step_m` per `control_period_s`."""
    unwrapped = env.unwrapped
    if not (hasattr(unwrapped, "max_step_m") and hasattr(unwrapped, "control_period_s")):
        raise ValueError(f"{env.spec.id if env.spec else env} does not move an end effector by teleop twists "
                         "(no max_step_m/control_period_s); remove the intervention section for this task.")
    return PickCubeTeleopAdapter.for_env(env)


class PickCubeTeleopAdapter:
    """Teleop twist -> pick-cube action: ee delta = v * dt / max_step_m, gripper +1 close / -1 open / 0 keep."""

    def __init__(self, control_period_s: float, max_step_m: float):
        self.control_period_s = float(control_period_s)
        self.max_step_m = float(max_step_m)

    @classmethod
    def for_env(cls, env) -> "PickCubeTeleopAdapter":
        env = env.unwrapped
        return cls(env.control_period_s, env.max_step_m)

    def to_action(self, reading: TeleopReading, previous_action: np.ndarray) -> np.ndarray:
        delta = np.clip(np.asarray(reading.twist[:3], float) * self.control_period_s / self.max_step_m, -1.0, 1.0)
        gripper = previous_action[3] if reading.gripper == 0 else np.sign(reading.gripper)
        return np.append(delta, gripper).astype(np.float32)

    def to_twist(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        """The inverse, for a scripted device that plans in action units."""
        linear = np.asarray(action[:3], float) * self.max_step_m / self.control_period_s
        return np.concatenate([linear, np.zeros(3)]), float(np.sign(action[3]))

    def safe_action(self, previous_action: np.ndarray) -> np.ndarray:
        """Hold position and keep the gripper as it was (opening it would drop a held cube)."""
        return np.array([0.0, 0.0, 0.0, previous_action[3]], np.float32)


@dataclass(frozen=True)
class ArbiterStep:
    executed_action: np.ndarray
    intervened: bool  # the device (or the safe state) chose executed_action, not the policy
    device: str  # "" when the policy drove
    takeover: bool = False  # the device took control at this step
    handback: bool = False  # control returned to the policy at this step
    safe_state_required: bool = False  # the device went silent mid-intervention: hold, do not resume the policy
    device_stale: bool = False


@dataclass
class InterventionArbiter:
    """Per-step choice between the policy and an intervention device (see the module docstring)."""

    config: InterventionConfig
    adapter: Any  # to_action(reading, previous_action), safe_action(previous_action)
    state: str = field(default="policy", init=False)  # "policy" | "device" | "safe"
    _last_input_ns: int | None = field(default=None, init=False)
    _toggled: bool = field(default=False, init=False)
    _toggle_was_down: bool = field(default=False, init=False)
    _previous_action: np.ndarray | None = field(default=None, init=False)
    _device: str = field(default="", init=False)
    takeovers: int = field(default=0, init=False)
    intervened_steps: int = field(default=0, init=False)

    def reset(self) -> None:
        """At an episode start: the policy drives; a latched toggle is released."""
        self.state, self._toggled, self._previous_action, self._last_input_ns = "policy", False, None, None

    def _button(self, reading: TeleopReading, index: int | None) -> bool:
        return index is not None and index < len(reading.buttons) and bool(reading.buttons[index])

    def _has_input(self, reading: TeleopReading) -> bool:
        cfg = self.config
        if self._button(reading, cfg.takeover_button) or self._toggled:
            return True
        if not reading.engaged:
            return False
        twist = np.asarray(reading.twist, float)
        moving = np.abs(twist[:3]).max() > cfg.deadband_m_s or np.abs(twist[3:]).max() > cfg.deadband_rad_s
        return bool(moving or reading.gripper != 0)

    def step(self, policy_action: np.ndarray, reading: TeleopReading | None, now_ns: int) -> ArbiterStep:
        cfg = self.config
        policy_action = np.asarray(policy_action, np.float32)
        previous = self._previous_action if self._previous_action is not None else policy_action
        stale = reading is None or now_ns - reading.stamp_ns > cfg.stale_timeout_ms * 1e6
        # A reading with NaN/inf in it is as useless as a missing one.
        stale = stale or not (np.all(np.isfinite(reading.twist)) and np.isfinite(reading.gripper))
        if stale:
            if self.state in ("device", "safe"):
                # A device that stopped reporting mid-intervention leaves the robot still, not to the policy.
                self.state = "safe"
                return self._emit(self.adapter.safe_action(previous), True, self._device, safe=True, stale=True)
            return self._emit(policy_action, False, "", stale=True)

        toggle_down = self._button(reading, cfg.toggle_button)
        toggled_off = False
        if toggle_down and not self._toggle_was_down:
            self._toggled = not self._toggled
            toggled_off = not self._toggled
        self._toggle_was_down = toggle_down
        active = self._has_input(reading)
        if active:
            self._last_input_ns = now_ns
        # A toggle pressed off is an explicit hand-back: no hold time.
        holding = (not toggled_off and self._last_input_ns is not None
                   and now_ns - self._last_input_ns < cfg.hold_s * 1e9)

        if self.state == "policy":
            if not active:
                return self._emit(policy_action, False, "")
            self.state, self._device = "device", reading.device
            self.takeovers += 1
            return self._emit(self.adapter.to_action(reading, previous), True, reading.device, takeover=True)
        if self.state == "safe" and not active:
            # Fresh again but silent: the operator let go, so the policy may drive.
            self.state = "policy"
            return self._emit(policy_action, False, "", handback=True)
        if active or holding:
            self.state, self._device = "device", reading.device
            return self._emit(self.adapter.to_action(reading, previous), True, reading.device)
        self.state = "policy"
        return self._emit(policy_action, False, "", handback=True)

    def _emit(self, action, intervened: bool, device: str, *, takeover=False, handback=False, safe=False,
              stale=False) -> ArbiterStep:
        action = np.asarray(action, np.float32)
        self._previous_action = action
        self.intervened_steps += int(intervened)
        return ArbiterStep(action, intervened, device, takeover, handback, safe, stale)


@dataclass(frozen=True)
class InterventionTransition:
    """One step as recorded: what the policy proposed, what ran, and who ran it."""

    obs: Any
    policy_action: np.ndarray
    executed_action: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    next_obs: Any
    intervened: bool
    device: str
    policy_version: int
    episode_start: bool = False

    @property
    def action(self) -> np.ndarray:
        """The action a learner trains on: what the robot actually did."""
        return self.executed_action


def route_transition(mode: str, transition: InterventionTransition, step: ArbiterStep,
                     rlif_penalty: float = -1.0) -> list[tuple[str, InterventionTransition]]:
    """(store name, transition) pairs for one recorded step; stores are "online", "demo" and "bc"."""
    # The demo and BC stores see intervention segments with gaps between them: each segment starts
    # afresh, so a replay buffer does not chain its first obs to the previous segment's next_obs.
    segment = replace(transition, episode_start=transition.episode_start or step.takeover)
    if mode == "hil-serl":
        routed = [(ONLINE, transition)]
        if transition.intervened:
            routed.append((DEMO, segment))
        return routed
    if mode == "rlif":
        routed = [(ONLINE, replace(transition, reward=0.0))]
        if step.takeover:
            # The overridden action, valued at the penalty and not bootstrapped: its own next state never happened.
            rejected = replace(transition, executed_action=transition.policy_action, reward=float(rlif_penalty),
                               terminated=True, truncated=False, intervened=False)
            routed.insert(0, (ONLINE, rejected))
        return routed
    if mode == "hg-dagger":
        return [(BC, segment)] if transition.intervened else []
    raise ValueError(f"intervention mode must be one of {', '.join(ROUTING_MODES)}, not {mode!r}.")
