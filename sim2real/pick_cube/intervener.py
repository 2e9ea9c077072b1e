"""A simulated human for pick-cube: watches the policy, takes over when it drifts from the expert's plan.

`ScriptedIntervener` is an `InterventionDevice`: each control step the env loop calls
`observe(policy_action)` and then `read()`, which returns a `TeleopReading` as a SpaceMouse
would (twist in m/s, gripper +-1, the takeover button held while it drives), so it plugs into
`robot_rl.intervention.InterventionArbiter` unchanged.

It takes over when the policy's ee delta differs from `PickCubeExpert`'s by more than
`deviation_threshold` (normalized action units), or its gripper command disagrees, for
`patience_steps` steps in a row, after `reaction_delay_steps` more steps (a person's reaction
time), while its per-episode and per-session budgets of intervention steps last. It hands back
once the policy has agreed with the expert for `agree_steps` steps, or after `max_takeover_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drivers.arms.base import now_ns
from drivers.teleop.base import InterventionDevice, TeleopReading, idle_reading
from sim2real.pick_cube.expert import PickCubeExpert

TAKEOVER_BUTTON = 0  # the reading holds button 0 while the intervener drives


@dataclass
class IntervenerConfig:
    deviation_threshold: float = 0.5  # |a_policy[:3] - a_expert[:3]| in normalized action units
    patience_steps: int = 2
    reaction_delay_steps: int = 2  # 0.2 s at 10 Hz: a person's reaction time
    agree_steps: int = 3
    max_takeover_steps: int = 20
    episode_budget_steps: int = 30
    session_budget_steps: int | None = None

    def __post_init__(self):
        if self.deviation_threshold <= 0:
            raise ValueError(f"deviation_threshold must be > 0, got {self.deviation_threshold}.")
        for name in ("patience_steps", "reaction_delay_steps", "agree_steps", "max_takeover_steps", "episode_budget_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")


class ScriptedIntervener(InterventionDevice):
    name = "scripted-expert"

    def __init__(self, env, config: IntervenerConfig | None = None, clock_ns=now_ns):
        self.env = env.unwrapped
        self.config = config or IntervenerConfig()
        self.expert = PickCubeExpert(env)
        self._clock_ns = clock_ns
        self.session_steps = 0
        self.takeovers = 0
        self.reset()

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def reset(self) -> None:
        """At an episode start (also done by itself when the env's step counter is back to 0)."""
        self.expert.reset()
        self.episode_steps = 0
        self.driving = False
        self._drift_steps = 0
        self._countdown: int | None = None
        self._agree_steps = 0
        self._takeover_steps = 0
        self._episode_start_seen = True
        self._reading: TeleopReading | None = None

    def _budget_left(self) -> bool:
        cfg = self.config
        if self.episode_steps >= cfg.episode_budget_steps:
            return False
        return cfg.session_budget_steps is None or self.session_steps < cfg.session_budget_steps

    def deviates(self, policy_action: np.ndarray, expert_action: np.ndarray) -> bool:
        policy_action = np.asarray(policy_action, float)
        gap = np.linalg.norm(policy_action[:3] - expert_action[:3])
        return bool(gap > self.config.deviation_threshold or np.sign(policy_action[3]) != np.sign(expert_action[3]))

    def observe(self, policy_action: np.ndarray) -> None:
        """Compare the policy's proposal for the env's current state with the expert's; decide this step."""
        if self.env.elapsed_steps == 0 and not self._episode_start_seen:
            self.reset()
        self._episode_start_seen = self.env.elapsed_steps == 0
        cfg = self.config
        expert_action = self.expert.act()
        deviates = self.deviates(policy_action, expert_action)

        if self.driving:
            self._agree_steps = 0 if deviates else self._agree_steps + 1
            if (self._agree_steps >= cfg.agree_steps or self._takeover_steps >= cfg.max_takeover_steps
                    or not self._budget_left()):
                self.driving = False
                self._drift_steps = 0
        else:
            self._drift_steps = self._drift_steps + 1 if deviates else 0
            if self._countdown is None and self._drift_steps >= max(cfg.patience_steps, 1):
                self._countdown = cfg.reaction_delay_steps
            if self._countdown is not None:
                if self._countdown <= 0:
                    self._countdown = None
                    if self._budget_left():
                        self.driving, self._agree_steps, self._takeover_steps = True, 0, 0
                        self.takeovers += 1
                else:
                    self._countdown -= 1

        stamp_ns = self._clock_ns()
        if not self.driving:
            self._reading = idle_reading(self.name, stamp_ns, (False,))
            return
        self.episode_steps += 1
        self.session_steps += 1
        self._takeover_steps += 1
        linear = expert_action[:3] * self.env.max_step_m / self.env.control_period_s
        twist = np.concatenate([linear, np.zeros(3)])
        self._reading = TeleopReading(stamp_ns, twist, float(np.sign(expert_action[3])), True, (True,), self.name)

    def read(self) -> TeleopReading:
        if self._reading is None:
            return idle_reading(self.name, self._clock_ns(), (False,))
        return self._reading
