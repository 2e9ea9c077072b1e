"""The actor process: steps the environment with the newest policy and streams transitions.

Run as ``python -m robot_rl.actor RUN_DIR [--connect tcp://LEARNER:5555]``. Every transition is
spooled to ``RUN/spool/`` before it is sent and kept until the learner has stored it durably; a
restarted actor resends what its predecessor left. Weights arrive at any time and are swapped in
between steps; every transition is stamped with the policy version that produced it. When the
learner is gone the actor keeps acting with its last weights (or holds the robot in its safe
state, ``--on-learner-lost safe_state``) while ZeroMQ reconnects with backoff. In simulation the
actor paces itself to the learner's update-to-data ratio.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import zmq

from drivers.errors import DeviceError
from robot_rl.acting import ActingPolicy, weights_from_bytes
from robot_rl.config import SessionConfig, load_session
from robot_rl.envs import action_bounds, denormalize_action, is_success, make_env, normalize_action
from robot_rl.rundir import RunDir, append_jsonl
from robot_rl.spaces import flatten_obs, obs_spec_from_space
from robot_rl.transport.link import ActorLink


def task_metrics(env, final_infos: list[dict]) -> dict | None:
    """The task's own figures over episodes, or None when the env defines none.

    An env contributes them with ``episode_metrics(final_infos) -> dict`` (numbers or None),
    given the last ``info`` of consecutive episodes. Figures named ``*_step`` are env steps from the
    first episode's start (milestones such as a first lap); the actor turns them into run env steps
    and wall seconds, and ``*_sim_s`` figures are the matching simulated seconds.
    """
    try:  # the outermost wrapper that defines it (e.g. a classifier reward adds its figures), else the env's
        episode_metrics = env.get_wrapper_attr("episode_metrics")
    except AttributeError:
        return None
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in episode_metrics(final_infos).items()}


def evaluate_policy(env, policy_fn, episodes: int, seed: int, on_reset=None) -> dict:
    """Deterministic evaluation: ``policy_fn(obs_dict) -> env action``; adds the env's ``task_metrics``.

    ``on_reset()`` (optional) runs at every episode start, e.g. to drop a planner's previous plan.
    """
    spec = obs_spec_from_space(env.observation_space)
    returns, successes, lengths, final_infos = [], [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        if on_reset is not None:
            on_reset()
        total, length, success = 0.0, 0, None
        while True:
            obs, reward, terminated, truncated, info = env.step(policy_fn(flatten_obs(spec, obs)))
            total += float(reward)
            length += 1
            success = is_success(info) if is_success(info) is not None else success
            if terminated or truncated:
                break
        final_infos.append(info)
        returns.append(total)
        lengths.append(length)
        if success is not None:
            successes.append(float(success))
    return {
        "mean_return": float(np.mean(returns)),
        "success_rate": float(np.mean(successes)) if successes else None,
        "mean_length": float(np.mean(lengths)),
        "episodes": episodes,
        "task_metrics": task_metrics(env, final_infos),
    }


TASK_EPISODE_LOG = "task_episodes.jsonl"  # RUN/logs/: the env's figures per training episode
TASK_EVAL_LOG = "task_evals.jsonl"  # RUN/logs/: the env's figures per periodic evaluation
INTERVENTION_LOG = "interventions.jsonl"  # RUN/logs/: takeovers and intervened steps per training episode
LEARNER_LOST_S = 3.0  # no word from the learner for this long counts as the learner being gone


class Actor:
    def __init__(self, run: RunDir, config: SessionConfig, actor_id: str = "actor0", max_env_steps: int | None = None,
                 endpoint: str | None = None, keep_acked_spool: bool = False, on_learner_lost: str = "continue",
                 key_name: str = "actor", device=None):
        self.run, self.config, self.actor_id = run, config, actor_id
        torch.set_num_threads(config.train.actor_torch_threads)
        self.env = make_env(config)
        self.eval_env = make_env(config)
        self.spec = obs_spec_from_space(self.env.observation_space)
        self.low, self.high = action_bounds(self.env)
        self.policy = ActingPolicy(self.spec, len(self.low), config.learner, self.low, self.high)
        self.rng = np.random.default_rng(config.seed + 1000)
        self.max_env_steps = max_env_steps or config.train.max_env_steps
        self.endpoint, self.keep_acked_spool, self.on_learner_lost = endpoint, keep_acked_spool, on_learner_lost
        self.key_name = key_name
        self.env_steps = 0
        self.stop = False
        self.start_time = time.monotonic()  # task milestones are timed from the actor's start
        run.logs.mkdir(parents=True, exist_ok=True)  # an actor on another machine may start from a bare run folder
        self.arbiter, self.device = None, None
        if config.intervention is not None:
            self._setup_intervention(device)

    def _setup_intervention(self, device) -> None:
        """The human (or the simulated one) who may take over; training steps only, evaluations run without."""
        from drivers.arms.base import now_ns
        from robot_rl.intervention import InterventionArbiter, make_intervention_device, make_teleop_adapter

        cfg = self.config.intervention
        self.scripted = cfg.device == "scripted" and device is None
        self.sim_time_ns = 0
        # the simulated human lives in simulated time; a person's device in wall time
        self.clock_ns = (lambda: self.sim_time_ns) if self.scripted else now_ns
        self.device = device if device is not None else make_intervention_device(cfg, self.env, self.clock_ns)
        if self.scripted:
            from sim2real.pick_cube.intervener import TAKEOVER_BUTTON

            # it holds its button while it drives and decides the hand-back itself: no hold time
            cfg = cfg.model_copy(update={"takeover_button": TAKEOVER_BUTTON, "hold_s": 0.0})
        self.arbiter = InterventionArbiter(cfg, make_teleop_adapter(self.env))
        self.control_period_ns = int(1e9 * getattr(self.env.unwrapped, "control_period_s", 0.1))

    @property
    def session_id(self) -> str:
        return self.link.session

    @property
    def learner_updates(self) -> int:
        return int(self.link.learner.get("learner_updates", 0))

    def connect(self, context: zmq.Context, timeout_s: float = 120.0) -> None:
        """Connect, take the first weights, and continue the run's env-step count where it stands."""
        self.link = ActorLink(self.run.root, self.actor_id, context, self.endpoint, self.keep_acked_spool, self.key_name)
        self.link.connect()
        deadline = time.monotonic() + timeout_s
        while (self.link.first_status is None or self.link.weights is None) and not self.stop:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from the learner at {self.link.endpoint} within {timeout_s:.0f} s; is it "
                                   f"running, and does this machine hold the run's keys folder?")
            self.link.pump(50)
        self.apply_weights()
        status = self.link.first_status or {}
        # transitions an earlier actor process spooled but the learner has not stored yet still count as steps
        pending = sum(self.link.spools[s].next_seq - int(status.get("next_seq", {}).get(s, 0))
                      for s in self.link.previous if s in self.link.spools)
        self.env_steps = int(status.get("env_steps", 0)) + max(pending, 0)

    def apply_weights(self) -> None:
        if self.link.weights is not None:
            version, blob, _ = self.link.weights
            self.policy.load(weights_from_bytes(blob), version)
            self.link.policy_version = version
            self.link.weights = None

    def poll(self, timeout_ms: int = 0) -> None:
        """Talk to the learner, then swap in new weights: this runs between env steps only."""
        self.link.pump(timeout_ms)
        self.apply_weights()
        if self.link.learner.get("stop"):
            self.stop = True

    def learner_lost(self) -> bool:
        return time.monotonic() - self.link.last_heard > LEARNER_LOST_S

    def hold_safe_state(self) -> None:
        """``--on-learner-lost safe_state``: put the robot in its safe state and wait for the learner."""
        safe_state = getattr(self.env.unwrapped, "safe_state", None)
        if safe_state is not None:
            safe_state()
        while self.learner_lost() and not self.stop:
            self.poll(100)

    def allowed_steps(self) -> float:
        cfg = self.config.learner
        if self.config.intervention is not None and self.config.intervention.mode == "hg-dagger":
            return float("inf")  # hg-dagger collects BC labels; the learner runs no RL updates to wait for
        return cfg.warmup_steps + self.learner_updates / cfg.utd + self.config.train.max_actor_lead_steps

    def choose_action(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        if self.env_steps < self.config.learner.warmup_steps or self.policy.version < 0:
            return self.rng.uniform(-1.0, 1.0, size=len(self.low)).astype(np.float32)
        return self.policy.act(obs, deterministic=False)

    def arbitrate(self, policy_action: np.ndarray):
        """(executed normalized action, record fields) for one step: the arbiter picks the policy or the device."""
        env_action = denormalize_action(policy_action, self.low, self.high)
        if self.scripted:
            self.device.observe(env_action)  # the simulated human compares it with the expert's plan
        step = self.arbiter.step(env_action, self.device.read(), self.clock_ns())
        self.sim_time_ns += self.control_period_ns
        executed = normalize_action(step.executed_action, self.low, self.high).astype(np.float32)
        fields = {"intervened": step.intervened, "device": step.device, "takeover": step.takeover,
                  "safe_hold": step.safe_state_required}
        return executed, fields

    def send_transition(self, obs, action, reward, terminated, truncated, next_obs, episode_start,
                        policy_action=None, intervention: dict | None = None) -> None:
        arrays = {"action": np.asarray(action, np.float32)}
        if policy_action is not None:
            arrays["policy_action"] = np.asarray(policy_action, np.float32)
        for key, value in obs.items():
            if episode_start:  # mid-episode, obs is the previous transition's next_obs: not sent or spooled twice
                arrays[f"obs/{key}"] = value
            arrays[f"next_obs/{key}"] = next_obs[key]
        self.link.submit({"policy_version": self.policy.version, "reward": float(reward), "terminated": bool(terminated),
                          "truncated": bool(truncated), "episode_start": bool(episode_start), **(intervention or {})},
                         arrays)

    def run_episodes(self) -> None:
        train = self.config.train
        next_eval = (self.env_steps // train.eval_every_env_steps + 1) * train.eval_every_env_steps
        episode = self.env_steps  # distinct reset seeds after a restart
        while not self.stop and self.env_steps < self.max_env_steps:
            # an actor restart begins a fresh episode in a new session: no observation is linked across the break
            raw, _ = self.env.reset(seed=self.config.seed + episode)
            obs = flatten_obs(self.spec, raw)
            total, start, success, info = 0.0, True, None, None
            first_step, step_wall_s = self.env_steps, []
            takeovers = intervened_steps = safe_hold_steps = 0
            if self.arbiter is not None:
                self.arbiter.reset()
            while not self.stop and self.env_steps < self.max_env_steps:
                self.poll(0)
                while self.env_steps >= self.allowed_steps() and not self.stop:
                    self.poll(20)  # simulation pacing: wait for the learner's updates
                if self.on_learner_lost == "safe_state" and self.learner_lost():
                    self.hold_safe_state()
                action = self.choose_action(obs)
                policy_action, fields = None, None
                if self.arbiter is not None:
                    policy_action, (action, fields) = action, self.arbitrate(action)
                    takeovers += fields["takeover"]
                    intervened_steps += fields["intervened"]
                    safe_hold_steps += fields["safe_hold"]
                raw, reward, terminated, truncated, info = self.env.step(denormalize_action(action, self.low, self.high))
                next_obs = flatten_obs(self.spec, raw)
                self.send_transition(obs, action, reward, terminated, truncated, next_obs, start, policy_action, fields)
                self.env_steps += 1
                total += float(reward)
                start = False
                obs = next_obs
                step_wall_s.append(time.monotonic() - self.start_time)
                success = is_success(info) if is_success(info) is not None else success
                if terminated or truncated:
                    break
            episode += 1
            metrics = self.episode_task_metrics(info, first_step, step_wall_s)
            interventions = None
            if self.arbiter is not None:
                interventions = {"takeovers": takeovers, "intervened_steps": intervened_steps,
                                 "safe_hold_steps": safe_hold_steps, "length": self.env_steps - first_step}
                append_jsonl(self.run.logs / INTERVENTION_LOG, {"env_steps": self.env_steps, "actor_id": self.actor_id,
                                                                "success": success, **interventions})
            self.link.control("episode", {"return": total, "success": success, "env_steps": self.env_steps,
                                          "task_metrics": metrics, "interventions": interventions})
            if self.env_steps >= next_eval and self.policy.version >= 0:
                next_eval += train.eval_every_env_steps
                self.evaluate()
        while not self.stop and not self.link.all_acked():  # the run ends only once the learner holds every step
            self.poll(50)
        if not self.stop:
            self.evaluate()
            self.link.control("done", {"env_steps": self.env_steps})

    def episode_task_metrics(self, final_info: dict | None, first_step: int, step_wall_s: list[float]) -> dict | None:
        """This training episode's task figures, milestones as run env steps and wall seconds; also logged."""
        metrics = task_metrics(self.env, [final_info]) if final_info is not None else None
        if metrics is None:
            return None
        for name, value in list(metrics.items()):
            if name.endswith("_step") and isinstance(value, int) and 0 < value <= len(step_wall_s):
                metrics[f"{name[:-5]}_env_steps"] = first_step + value
                metrics[f"{name[:-5]}_wall_s"] = round(step_wall_s[value - 1], 2)
        append_jsonl(self.run.logs / TASK_EPISODE_LOG, {"env_steps": self.env_steps, "start_env_steps": first_step,
                                                         "actor_id": self.actor_id, **metrics})
        return metrics

    def evaluate(self) -> None:
        def policy_fn(obs):
            return denormalize_action(self.policy.act(obs, deterministic=True), self.low, self.high)

        result = evaluate_policy(self.eval_env, policy_fn, self.config.train.eval_episodes, seed=10_000_000 + self.env_steps)
        self.link.control("eval", {**result, "env_steps": self.env_steps, "policy_version": self.policy.version})
        if result["task_metrics"] is not None:  # the learner's eval log keeps only generic figures
            record = {"env_steps": self.env_steps, "policy_version": self.policy.version, **result["task_metrics"]}
            append_jsonl(self.run.logs / TASK_EVAL_LOG, record)


DEVICE_FAILURE_EXIT_CODE = 3
DEVICE_FAILURE_PREFIX = "robot_rl actor: device failure: "


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="robot_rl actor process")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--actor-id", default="actor0")
    parser.add_argument("--connect", help="learner endpoint, e.g. tcp://192.168.1.10:5555 (default: RUN/endpoints.json)")
    parser.add_argument("--on-learner-lost", choices=("continue", "safe_state"), default="continue",
                        help="keep acting with the last weights, or hold the robot in its safe state until it is back")
    parser.add_argument("--key-name", default="actor", help="client key pair in RUN/keys/ (see `robot-rl keys --client`)")
    parser.add_argument("--keep-acked-spool", action="store_true", help="keep acknowledged spool segments (audits, tests)")
    args = parser.parse_args(argv)
    run = RunDir(args.run_dir)
    actor = Actor(run, load_session(run.config), args.actor_id, endpoint=args.connect,
                  keep_acked_spool=args.keep_acked_spool, on_learner_lost=args.on_learner_lost, key_name=args.key_name)

    def stop(signum, frame):
        actor.stop = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    context = zmq.Context()
    try:
        if actor.device is not None:
            actor.device.connect()  # a missing device ends here, in one sentence (DeviceError)
        actor.connect(context)
        actor.run_episodes()
    except DeviceError as err:
        # every transition so far is in the spool; the robot goes to its safe state, the person gets one sentence
        try:
            actor.hold_safe_state()
        except Exception as hold_err:  # the device may be gone entirely
            err = DeviceError(f"{err} (putting the robot in its safe state failed too: {hold_err})")
        print(f"{DEVICE_FAILURE_PREFIX}{err}", file=sys.stderr, flush=True)
        sys.exit(DEVICE_FAILURE_EXIT_CODE)
    finally:
        if actor.device is not None:
            actor.device.close()
        if hasattr(actor, "link"):
            actor.link.close()
        context.term()


if __name__ == "__main__":
    main()
