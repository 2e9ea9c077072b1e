"""``train_world_model``: a TD-MPC2-style world-model session in one process (``trainer: world_model``).

record expert demos (same as the SAC session) -> pretrain the model on demos -> act by MPPI planning
(fully: simulation waits for it; the time budget applies in the final evaluation, as on a robot), one update per env step on sub-trajectories drawn half from demos, half from online
data (``robot_rl.replay.ReplayBuffer``) -> periodic planner evaluations, stopping at the success bar ->
final evaluation with the planner and with the policy prior alone -> ONNX export of the prior (the
planner itself is not exportable) and its onnxruntime evaluation -> ``report.json`` / ``report.md``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from policies.world_model.agent import WorldModelAgent, batch_to_torch
from policies.world_model.config import AgentSettings, ModelSettings, PlannerSettings
from policies.world_model.planner import PATHS
from policies.world_model.policy import PriorPolicy, model_to_bytes
from policies.world_model.presets import preset
from policies.world_model.sequences import concat_sequences, sample_sequences
from robot_rl.config import ConfigError, DemoConfig, SessionConfig, session_trainer, validate_session_file
from robot_rl.actor import evaluate_policy
from robot_rl.envs import action_bounds, control_hz, denormalize_action, make_env
from robot_rl.episodes import episode_paths, load_episodes_into
from robot_rl.replay import ReplayBuffer
from robot_rl.rundir import RunDir, append_jsonl, start_in_process_run, write_json_atomic
from robot_rl.spaces import flatten_obs, obs_spec_from_space

FINAL_EVAL_SEED = 1_000_000  # as robot_rl.session: seeds no training episode used
PERIODIC_EVAL_SEED = 10_000_000  # + env steps, as the SAC actor's periodic evaluations


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorldModelTrainSettings(_Strict):
    max_env_steps: int = Field(20_000, ge=1)
    max_minutes: float = Field(30.0, gt=0)
    utd: int = Field(1, ge=1, description="updates per env step (TD-MPC2: 1)")
    demo_ratio: float = Field(0.5, ge=0, le=1, description="share of each batch from demos (as the SAC session, RLPD)")
    # MoDem (Hansen et al. 2023) pretrains on demos before interacting; these updates cost no env steps
    pretrain_updates: int = Field(1000, ge=0)
    seed_steps: int = Field(0, ge=0, description="random-action env steps before planning (TD-MPC2 without demos: 1000)")
    # MoDem's interaction phase: act with the (demo-pretrained) prior first, so that the value model sees the
    # prior's failures as well as the demos' successes before the planner trusts it
    prior_steps: int = Field(0, ge=0)
    replay_capacity: int = Field(200_000, ge=1)
    eval_every_env_steps: int = Field(1000, ge=1)
    eval_episodes: int = Field(20, ge=1)
    stop_at_success_rate: float | None = Field(None, gt=0, le=1)
    stop_after_evals_at_bar: int = Field(2, ge=1, description="consecutive evaluations at the bar (as the SAC session)")
    final_eval_episodes: int = Field(50, ge=1)
    # simulation waits for the planner, so training and periodic evaluations plan fully: learning then does not
    # depend on how loaded the machine is; the final evaluation applies the budget as a robot would
    budget_in_training: bool = False


class WorldModelSessionConfig(_Strict):
    trainer: Literal["world_model"] = "world_model"
    name: str
    env: str
    env_kwargs: dict[str, Any] = {}
    seed: int = 0
    control_hz: float | None = None
    preset: Literal["cpu", "gpu"] = "cpu"
    model: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's ModelSettings")
    planner: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's PlannerSettings")
    agent: AgentSettings = AgentSettings()
    demos: DemoConfig = DemoConfig()
    train: WorldModelTrainSettings = WorldModelTrainSettings()

    def settings(self) -> tuple[ModelSettings, PlannerSettings]:
        model, planner = preset(self.preset)
        return model.model_copy(update=self.model), planner.model_copy(update=self.planner)

    def session(self) -> SessionConfig:
        """The parts the shared helpers (env factory, expert demos) read."""
        return SessionConfig(name=self.name, env=self.env, env_kwargs=self.env_kwargs, seed=self.seed,
                             control_hz=self.control_hz, demos=self.demos)


def is_world_model_session(config_path: str | Path) -> bool:
    """True when the session file asks for this trainer (top-level ``trainer: world_model``)."""
    return session_trainer(config_path) == "world_model"


def load_world_model_session(path: str | Path) -> WorldModelSessionConfig:
    def validate(raw: dict) -> WorldModelSessionConfig:
        config = WorldModelSessionConfig.model_validate(raw)
        ModelSettings.model_validate(config.settings()[0].model_dump())  # overrides are checked like the rest
        PlannerSettings.model_validate(config.settings()[1].model_dump())
        return config

    return validate_session_file(path, validate)


# ----- evaluation -------------------------------------------------------------------------
def decision_figures(decisions: list) -> dict:
    """Planner figures over decisions: rate, latency percentiles, share of each path."""
    if not decisions:
        return {}
    elapsed = np.array([d.elapsed_ms for d in decisions])
    return {"decisions": len(decisions), "decision_hz": round(1e3 / float(elapsed.mean()), 1),
            "decision_p50_ms": round(float(np.percentile(elapsed, 50)), 2),
            "decision_p99_ms": round(float(np.percentile(elapsed, 99)), 2),
            "mean_iterations": round(float(np.mean([d.iterations for d in decisions])), 2),
            **{f"{path}_share": round(float(np.mean([d.path == path for d in decisions])), 4) for path in PATHS}}


def evaluate(env, act, episodes: int, seed: int, reset=None) -> dict:
    """``act(obs_dict) -> normalized action``, through the sessions' evaluation; ``reset()`` at every episode start."""
    low, high = action_bounds(env)
    return evaluate_policy(env, lambda obs: denormalize_action(act(obs), low, high), episodes, seed, on_reset=reset)


def evaluate_planner(env, planner, episodes: int, seed: int) -> dict:
    decisions = []

    def act(obs):
        decision = planner.plan(obs["state"], explore=False)
        decisions.append(decision)
        return decision.action

    result = evaluate(env, act, episodes, seed, reset=planner.reset)
    return {**result, **decision_figures(decisions)}


@torch.no_grad()
def prior_action(model, obs: dict) -> np.ndarray:
    """The policy prior's deterministic normalized action."""
    return model.pi_mean(model.encode(torch.from_numpy(obs["state"]).unsqueeze(0)))[0].numpy()


# ----- training ---------------------------------------------------------------------------
def run_training(config: WorldModelSessionConfig, run: RunDir | None, demos_dir: Path, log=print) -> tuple:
    """Train until the bar, the step limit or the time limit; returns (agent, planner, stats)."""
    from policies.world_model.planner import MPPIPlanner

    torch.set_num_threads(1)
    start, cpu_start = time.monotonic(), time.process_time()
    train, agent_cfg = config.train, config.agent
    model_settings, planner_settings = config.settings()
    env, eval_env = make_env(config.session()), make_env(config.session())
    spec = obs_spec_from_space(env.observation_space)
    if spec.has_images:
        raise ConfigError(f"{config.env}: the world-model trainer takes state observations only; use a state task")
    low, high = action_bounds(env)
    agent = WorldModelAgent(spec.state_dim, len(low), model_settings, agent_cfg, seed=config.seed)
    training_planner = planner_settings if train.budget_in_training else planner_settings.model_copy(
        update={"time_budget_ms": None})
    planner = MPPIPlanner(agent.model, training_planner, agent_cfg.discount, seed=config.seed + 2)
    online = ReplayBuffer(spec, len(low), train.replay_capacity, seed=config.seed + 3)
    demos = ReplayBuffer(spec, len(low), train.replay_capacity, seed=config.seed + 4)
    demo_transitions = load_episodes_into(demos, demos_dir, spec) if episode_paths(demos_dir) else 0
    horizon, batch_size = agent_cfg.horizon, agent_cfg.batch_size
    n_demo = int(round(batch_size * train.demo_ratio)) if demo_transitions else 0
    statistics_set = False

    def update() -> dict:
        nonlocal statistics_set
        if not statistics_set:  # state standardization from the first data the model learns from
            source = demos if demo_transitions else online
            agent.model.set_state_statistics(torch.from_numpy(source.observations["state"][:source.size]))
            statistics_set = True
        online_ready = online.size >= batch_size
        count_demo = batch_size if not online_ready else n_demo
        parts = []
        if count_demo:
            parts.append((sample_sequences(demos, count_demo, horizon), 1.0))
        if online_ready and batch_size - count_demo:
            parts.append((sample_sequences(online, batch_size - count_demo, horizon), 0.0))
        batch = parts[0][0] if len(parts) == 1 else concat_sequences(parts[0][0], parts[1][0])
        batch["demo"] = np.concatenate([np.full(p["action"].shape[1], flag, np.float32) for p, flag in parts])
        return agent.update(batch_to_torch(batch))

    metrics: dict = {}
    if demo_transitions:
        for _ in range(train.pretrain_updates):
            metrics = update()
        log(f"pretrained on {demo_transitions} demo transitions: {train.pretrain_updates} updates")
    pretrain_s = time.monotonic() - start

    rng = np.random.default_rng(config.seed + 1000)
    env_steps, episodes, evals, at_bar, stopped_by = 0, 0, [], 0, "max_env_steps"
    prior_at_bar, steps_to_bar_prior = 0, None  # the prior alone, for comparison (the planner decides the stop)
    decisions, next_eval = [], train.eval_every_env_steps
    deadline = start + 60.0 * train.max_minutes
    while env_steps < train.max_env_steps and stopped_by == "max_env_steps":
        raw, _ = env.reset(seed=config.seed + episodes)
        obs, start_flag = flatten_obs(spec, raw), True
        planner.reset()
        episodes += 1
        while True:
            if env_steps < train.seed_steps or (not demo_transitions and online.size < batch_size):
                action = rng.uniform(-1.0, 1.0, len(low)).astype(np.float32)
            elif env_steps < train.seed_steps + train.prior_steps:
                with torch.no_grad():
                    action = agent.model.pi_sample(agent.model.encode(torch.from_numpy(obs["state"])[None]),
                                                   agent.generator)[0][0].numpy()
            else:
                decision = planner.plan(obs["state"], explore=True)
                decisions.append(decision)
                action = decision.action
            raw, reward, terminated, truncated, _ = env.step(denormalize_action(action, low, high))
            next_obs = flatten_obs(spec, raw)
            online.add(obs, action, reward, terminated, truncated, next_obs, episode_start=start_flag)
            obs, start_flag = next_obs, False
            env_steps += 1
            if demo_transitions or online.size >= batch_size:
                for _ in range(train.utd):
                    metrics = update()
            if env_steps >= next_eval:
                next_eval += train.eval_every_env_steps
                result = evaluate_planner(eval_env, planner, train.eval_episodes, PERIODIC_EVAL_SEED + env_steps)
                prior_result = evaluate(eval_env, lambda o: prior_action(agent.model, o), train.eval_episodes,
                                        PERIODIC_EVAL_SEED + env_steps)
                record = {"env_steps": env_steps, "wall_s": round(time.monotonic() - start, 1),
                          "eval_return": result["mean_return"], "success_rate": result["success_rate"],
                          "prior_success_rate": prior_result["success_rate"],
                          "updates": agent.updates, "decision_hz": result.get("decision_hz"),
                          "decision_p99_ms": result.get("decision_p99_ms"), "prior_share": result.get("prior_share"),
                          **{k: round(v, 4) for k, v in metrics.items()}}
                evals.append(record)
                if run is not None:
                    append_jsonl(run.eval_log, record)
                log(f"env steps {env_steps}: success {result['success_rate']:.2f} (prior alone "
                    f"{prior_result['success_rate']:.2f}), return {result['mean_return']:.2f}, "
                    f"{result.get('decision_hz')} decisions/s, p99 {result.get('decision_p99_ms')} ms ({time.monotonic() - start:.0f} s)")
                bar = train.stop_at_success_rate
                at_bar = at_bar + 1 if bar is not None and result["success_rate"] >= bar else 0
                prior_at_bar = prior_at_bar + 1 if bar is not None and prior_result["success_rate"] >= bar else 0
                if steps_to_bar_prior is None and prior_at_bar >= train.stop_after_evals_at_bar:
                    steps_to_bar_prior = env_steps
                if at_bar >= train.stop_after_evals_at_bar:
                    stopped_by = "eval_bar_reached"
            if stopped_by != "max_env_steps" or env_steps >= train.max_env_steps:
                break
            if time.monotonic() > deadline:
                stopped_by = "max_minutes"
                break
            if terminated or truncated:
                break
    env.close()
    eval_env.close()
    stats = {"env_steps": env_steps, "episodes": episodes, "learner_updates": agent.updates, "stopped_by": stopped_by,
             "steps_to_bar": env_steps if stopped_by == "eval_bar_reached" else None,
             "steps_to_bar_prior": steps_to_bar_prior,
             "wall_s": time.monotonic() - start, "cpu_s": time.process_time() - cpu_start, "pretrain_wall_s": pretrain_s,
             "demo_transitions": demo_transitions, "periodic_evals": evals, "last_metrics": metrics,
             "training_decisions": decision_figures(decisions)}
    return agent, planner, stats


# ----- the session ------------------------------------------------------------------------
def prepare_world_model_run(config_path, run_dir=None, max_env_steps=None, max_minutes=None, seed=None):
    overrides = {"max_env_steps": max_env_steps, "max_minutes": max_minutes}
    return start_in_process_run(load_world_model_session(config_path), run_dir, overrides, seed)


def train_world_model(config_path, run_dir=None, max_env_steps=None, max_minutes=None, seed=None, quiet=False,
                      log=print) -> dict:
    """Train, evaluate, export; returns the report dict (also written to ``RUN/report.json``)."""
    from robot_rl.session import record_expert_demos

    torch.set_num_threads(1)
    start = time.monotonic()
    run, config = prepare_world_model_run(config_path, run_dir, max_env_steps, max_minutes, seed)
    say = (lambda *_: None) if quiet else log
    log(f"run directory: {run.root}")
    if config.demos.source == "expert" and config.demos.episodes > 0 and len(episode_paths(run.demos)) < config.demos.episodes:
        record_expert_demos(config.session(), run.demos, config.demos.episodes, say)
    agent, planner, stats = run_training(config, run, run.demos, say)
    log(f"training ended ({stats['stopped_by']}): {stats['env_steps']} env steps, {stats['learner_updates']} updates "
        f"in {stats['wall_s']:.1f} s")
    torch.save(agent.state_dict(), run.checkpoints / "final_world_model.pt")
    (run.checkpoints / "final_world_model.safetensors").write_bytes(model_to_bytes(agent.model))
    report = finalize(run, config, agent, planner, stats, log)
    report["wall_s"] = round(time.monotonic() - start, 1)
    write_report(run, report)
    return report


def finalize(run: RunDir, config: WorldModelSessionConfig, agent, planner, stats: dict, log=print) -> dict:
    from policies.export.onnx_export import OnnxPolicy, export_onnx
    from policies.export.spec import build_export_spec
    from robot_rl.session import parity_observations

    env = make_env(config.session())
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    episodes = config.train.final_eval_episodes
    model_settings, planner_settings = config.settings()
    log(f"evaluating the planner (time budget {planner_settings.time_budget_ms} ms) over {episodes} episodes, "
        "then the policy prior alone")
    planner.settings = planner_settings
    planned = evaluate_planner(env, planner, episodes, FINAL_EVAL_SEED)
    prior = PriorPolicy(agent.model, low, high).eval()

    prior_eval = evaluate(env, lambda o: prior_action(agent.model, o), episodes, FINAL_EVAL_SEED)
    export_spec = build_export_spec(
        env, spec, control_hz=control_hz(env, config.session()), env_id=config.env, env_kwargs=config.env_kwargs,
        session=config.name, training_run=run.root, learner_updates=agent.updates)
    export_spec["policy"] = "world-model policy prior (the MPPI planner is not exportable: it samples and sorts in a loop)"
    exported = export_onnx(prior, export_spec, run.exports / "policy.onnx", parity_observations(run, spec, env))
    onnx_policy = OnnxPolicy(exported["path"])
    onnx_eval = evaluate_policy(env, onnx_policy, episodes, FINAL_EVAL_SEED)  # the export acts in env units
    env.close()
    return {
        "task": config.env, "session": config.name, "seed": config.seed, "trainer": "world_model",
        "preset": config.preset, "model_parameters": agent.model.num_parameters(),
        "env_steps": int(stats["env_steps"]), "wall_s": None, "train_wall_s": round(stats["wall_s"], 1),
        "train_cpu_s": round(stats["cpu_s"], 1), "load_avg_1m": round(os.getloadavg()[0], 2),
        "learner_updates": int(stats["learner_updates"]), "stopped_by": stats["stopped_by"],
        "steps_to_bar": stats["steps_to_bar"], "steps_to_bar_prior": stats["steps_to_bar_prior"],
        "demo_transitions": stats["demo_transitions"],
        "eval_episodes": episodes, "eval_return": planned["mean_return"], "success_rate": planned["success_rate"],
        "planner": {k: v for k, v in planned.items()
                    if k not in ("mean_return", "success_rate", "episodes", "mean_length", "task_metrics")},
        "planner_time_budget_ms": planner_settings.time_budget_ms,
        "budget_in_training": config.train.budget_in_training,
        "prior_eval_return": prior_eval["mean_return"], "prior_success_rate": prior_eval["success_rate"],
        "onnx_eval_return": onnx_eval["mean_return"], "onnx_success_rate": onnx_eval["success_rate"],
        "onnx_path": exported["path"], "onnx_sha256": exported["sha256"],
        "onnx_parity_max_abs_err": exported["parity_max_abs_err"],
        "onnx_note": "the ONNX file is the policy prior alone; the MPPI planner is not exportable",
        "training_decisions": stats["training_decisions"], "last_metrics": stats["last_metrics"],
        "periodic_evals": stats["periodic_evals"],
        "model_settings": model_settings.model_dump(), "planner_settings": planner_settings.model_dump(),
    }


def write_report(run: RunDir, report: dict) -> dict:
    write_json_atomic(run.root / "report.json", report)
    skip = {"periodic_evals", "model_settings", "planner_settings", "last_metrics"}
    lines = [f"# {report['session']}: {report['task']} (world model, TD-MPC2-style, {report['preset']} preset)", "",
             "| metric | value |", "| --- | --- |"]
    for key, value in report.items():
        if key in skip:
            continue
        if isinstance(value, dict):
            lines += [f"| {key}.{k} | {v} |" for k, v in value.items()]
        else:
            lines.append(f"| {key} | {value} |")
    evals = report.get("periodic_evals") or []
    if evals:
        lines += ["", "| env steps | success rate | prior alone | eval return | decisions/s | decision p99 (ms) | prior share |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {e['env_steps']} | {e['success_rate']:.2f} | {e['prior_success_rate']:.2f} | {e['eval_return']:.2f} | {e.get('decision_hz')} | "
                  f"{e.get('decision_p99_ms')} | {e.get('prior_share')} |" for e in evals]
    (run.root / "report.md").write_text("\n".join(lines) + "\n")
    return report
