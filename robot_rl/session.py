"""``robot-rl train``: record demos, run learner and actor as processes, then evaluate, export, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from drivers.errors import DeviceError
from robot_rl.acting import ActingPolicy, weights_from_bytes
from robot_rl.actor import (
    DEVICE_FAILURE_EXIT_CODE,
    DEVICE_FAILURE_PREFIX,
    INTERVENTION_LOG,
    TASK_EPISODE_LOG,
    evaluate_policy,
)
from robot_rl.config import ConfigError, SessionConfig, dump_session, load_session
from robot_rl.envs import (
    RC_CAR_CAMERA_ENV,
    action_bounds,
    control_hz,
    denormalize_action,
    is_success,
    make_env,
    make_expert,
    normalize_action,
)
from robot_rl.episodes import EpisodeWriter, episode_paths, read_episode, write_episode
from robot_rl.learner import write_spec
from robot_rl.report import intervention_summary, training_milestones, without_milestones, write_report
from robot_rl.reward.session import prepare_reward, uses_classifier
from robot_rl.reward.session import training_summary as classifier_training_summary
from robot_rl.rundir import RunDir, read_jsonl
from robot_rl.spaces import flatten_obs, obs_spec_from_space
from robot_rl.transport.keys import ensure_keys

FINAL_EVAL_SEED = 1_000_000


class DeviceFailure(DeviceError):
    """A device failed during a session; the robot was put in its safe state and the data kept."""  # final evaluations use seeds no training episode used


def child_env() -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, "1")  # never let BLAS spin on every core of a small machine
    env.setdefault("MUJOCO_GL", "egl")
    return env


def prepare_run(config_path: str | Path, run_dir: str | Path | None = None, **overrides) -> tuple[RunDir, SessionConfig]:
    """Resolve the run directory; an existing one is resumed with its own stored config."""
    config = load_session(config_path)
    run = RunDir(Path(run_dir) if run_dir else Path("runs") / config.name)
    if run.config.exists():
        config = load_session(run.config)
    train = config.train.model_copy(update={k: v for k, v in overrides.items() if v is not None and k != "seed"})
    config = config.model_copy(update={"train": train})
    if overrides.get("seed") is not None:
        config = config.model_copy(update={"seed": overrides["seed"]})
    config = SessionConfig.model_validate(config.model_dump())  # re-validate the overrides
    run.make()
    config = prepare_reward(config, run.root)  # a classifier reward: checkpoint path made absolute, trained if missing
    if config.env == RC_CAR_CAMERA_ENV:  # its frozen camera encoder: path made absolute, pretrained if missing
        from sim2real.rc_car.embedding import prepare_camera_encoder  # the RC car sim (and scipy) only for this env

        config = prepare_camera_encoder(config, run.root)
    dump_session(config, run.config)
    write_spec(run, config)
    ensure_keys(run.root)
    return run, config


def record_expert_demos(config: SessionConfig, directory: Path, episodes: int, log=print) -> int:
    """Run the env's scripted expert as a teleoperator would, keeping successful episodes."""
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    expert = make_expert(env)
    rng = np.random.default_rng(config.seed + 99)
    kept, attempts = len(episode_paths(directory)), 0
    while kept < episodes and attempts < 5 * episodes + 10:
        raw, _ = env.reset(seed=config.seed + 500_000 + attempts)
        attempts += 1
        writer = EpisodeWriter()
        writer.start(flatten_obs(spec, raw))
        success = False
        while True:
            action = normalize_action(expert.act(raw), low, high)
            if config.demos.action_noise > 0:
                action = np.clip(action + rng.normal(0, config.demos.action_noise, action.shape), -1, 1).astype(np.float32)
            raw, reward, terminated, truncated, info = env.step(denormalize_action(action, low, high))
            writer.step(action, reward, terminated, truncated, flatten_obs(spec, raw))
            success = bool(is_success(info)) or success
            if terminated or truncated:
                break
        if success or not config.demos.only_successful:
            write_episode(directory, kept, writer.arrays())
            kept += 1
    env.close()
    log(f"demos: {kept} episodes in {directory} ({attempts} attempts)")
    if kept < episodes:
        raise RuntimeError(f"the scripted expert completed only {kept} of {attempts} episodes; check the task settings")
    return kept


def _progress(run: RunDir, learner: subprocess.Popen, actor: subprocess.Popen, config: SessionConfig, quiet: bool) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    total = config.train.max_env_steps
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), disable=quiet, refresh_per_second=2) as bar:
        task = bar.add_task("training", total=total, info="")
        while learner.poll() is None:
            time.sleep(0.5)
            if actor.poll() not in (None, 0):
                learner.terminate()
            try:
                stats = json.loads(run.status.read_text())
            except (OSError, ValueError):
                continue
            last = stats.get("last_eval") or {}
            success = last.get("success_rate")
            info = (f"ep {stats['episodes']} | eval {'%.2f' % last['eval_return'] if last else '-'}"
                    f"{' succ %.2f' % success if success is not None else ''} | upd {stats['learner_updates']}"
                    f" ({stats['updates_per_s']:.0f}/s, UTD {stats['utd']:.1f}) | lag {stats['policy_lag']}")
            if stats.get("interventions"):  # human-in-the-loop: how much of the recent driving was the human's
                hil = stats["interventions"]
                info += f" | {hil['mode']} {hil['takeovers']} takeovers, {hil['recent_intervened_share']:.0%} intervened"
            bar.update(task, completed=min(stats["env_steps"], total), info=info)


def run_training(run: RunDir, config: SessionConfig, quiet: bool = False) -> dict:
    """Learner and actor as two processes talking over ZeroMQ; returns the learner's final stats.

    On a run directory that already holds a session, the learner resumes from its checkpoint and
    replay store, and the actor resends whatever an earlier actor left unacknowledged in its spool.
    """
    log_dir = run.logs
    env = child_env()
    with open(log_dir / "learner.log", "ab") as learner_log, open(log_dir / "actor.log", "ab") as actor_log:
        learner = subprocess.Popen([sys.executable, "-m", "robot_rl.learner", str(run.root)], env=env,
                                   stdout=learner_log, stderr=subprocess.STDOUT)
        actor = subprocess.Popen([sys.executable, "-m", "robot_rl.actor", str(run.root)], env=env,
                                 stdout=actor_log, stderr=subprocess.STDOUT)
        try:
            _progress(run, learner, actor, config, quiet)
            learner.wait()
            try:
                actor.wait(timeout=30)
            except subprocess.TimeoutExpired:
                actor.terminate()
                actor.wait()
        except KeyboardInterrupt:
            for proc in (actor, learner):
                proc.terminate()
            for proc in (actor, learner):
                proc.wait()
            raise
    if actor.returncode == DEVICE_FAILURE_EXIT_CODE:
        lines = [ln for ln in (log_dir / "actor.log").read_text().splitlines() if ln.startswith(DEVICE_FAILURE_PREFIX)]
        raise DeviceFailure(f"{lines[-1][len(DEVICE_FAILURE_PREFIX):] if lines else 'see ' + str(log_dir / 'actor.log')} "
                            f"The data so far is saved in {run.root}; `robot-rl train` on it resumes.")
    if actor.returncode not in (0, -15):
        tail = (log_dir / "actor.log").read_text()[-3000:]
        raise RuntimeError(f"the actor exited with code {actor.returncode}; its log ends:\n{tail}")
    if learner.returncode != 0:
        tail = (log_dir / "learner.log").read_text()[-3000:]
        raise RuntimeError(f"the learner exited with code {learner.returncode}; its log ends:\n{tail}")
    return json.loads(run.status.read_text())


def load_final_policy(run: RunDir, config: SessionConfig):
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    policy = ActingPolicy(spec, len(low), config.learner, low, high)
    policy.load(weights_from_bytes(run.final_policy.read_bytes()), version=0)
    return env, spec, policy


def parity_observations(run: RunDir, spec, env, count: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Recorded observations for the export parity check: demos, then the replay store.

    Only a run with neither (nothing was ever recorded) falls back to stepping ``env`` with random actions.
    """
    keys = ["state", *spec.image_keys]
    collected = {k: [] for k in keys}

    def enough() -> bool:
        return sum(len(a) for a in collected["state"]) >= count

    for path in episode_paths(run.demos):
        episode = read_episode(path)
        for k in keys:
            collected[k].append(episode[f"obs/{k}"])
        if enough():
            break
    if not enough() and (run.replay / "manifest.json").exists():
        from robot_rl.replay import ReplayStore

        store = ReplayStore(run.replay, spec, env.action_space.shape[0])
        for _, arrays in store.iter_records():
            for k in keys:
                collected[k].append(arrays[f"next_obs/{k}"][None])
            if enough():
                break
        store.close()
    if not collected["state"]:
        env.action_space.seed(seed)
        raw, _ = env.reset(seed=seed)
        for _ in range(count):
            obs = flatten_obs(spec, raw)
            for k in keys:
                collected[k].append(obs[k][None])
            raw, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                raw, _ = env.reset()
    return {k: np.concatenate(v)[:count] for k, v in collected.items()}


def finalize(run: RunDir, config: SessionConfig, stats: dict, wall_s: float, log=print) -> dict:
    """Evaluate the final torch policy, export to ONNX, evaluate the export, write the report."""
    from policies.export.onnx_export import OnnxPolicy, export_onnx
    from policies.export.spec import build_export_spec

    torch.set_num_threads(1)
    env, spec, policy = load_final_policy(run, config)
    low, high = action_bounds(env)
    episodes = config.train.final_eval_episodes
    log(f"evaluating the final policy over {episodes} deterministic episodes (torch)")
    torch_eval = evaluate_policy(env, lambda o: denormalize_action(policy.act(o, True), low, high), episodes, FINAL_EVAL_SEED)

    export_spec = build_export_spec(
        env, spec, control_hz=control_hz(env, config), env_id=config.env, env_kwargs=config.env_kwargs,
        session=config.name, training_run=run.root, policy_version=stats.get("policy_version", 0),
        learner_updates=stats.get("learner_updates", 0))
    if config.residual is not None:  # base + residual in one export where the base is ONNX (policies/residual.py)
        from policies.residual import export_residual_session

        exported, onnx_env = export_residual_session(policy.deploy, config, export_spec, run.exports / "policy.onnx",
                                                     parity_observations(run, spec, env), env)
    elif config.env == RC_CAR_CAMERA_ENV:  # frozen camera encoder + actor in one camera-in graph, evaluated on the camera env
        from sim2real.rc_car.embedding import export_camera_session

        exported, onnx_env = export_camera_session(policy.deploy, env, lambda e, s: build_export_spec(
            e, s, control_hz=control_hz(e, config), env_id="robot_rl/RCCarRace-v0",
            env_kwargs={k: v for k, v in config.env_kwargs.items() if k != "encoder_path"},
            session=config.name, training_run=run.root, policy_version=stats.get("policy_version", 0),
            learner_updates=stats.get("learner_updates", 0)), run.exports / "policy.onnx")
    else:
        exported, onnx_env = export_onnx(policy.deploy, export_spec, run.exports / "policy.onnx",
                                         parity_observations(run, spec, env)), env
    log(f"exported {exported['path']} (parity max abs error {exported['parity_max_abs_err']:.2e})")
    onnx_policy = OnnxPolicy(exported["path"])
    log(f"evaluating the exported policy over {episodes} deterministic episodes (onnxruntime)")
    onnx_eval = evaluate_policy(onnx_env, onnx_policy, episodes, FINAL_EVAL_SEED)
    env.close()

    report = {
        "task": config.env, "session": config.name, "seed": config.seed,
        "env_steps": int(stats["env_steps"]), "wall_s": round(wall_s, 1), "learner_updates": int(stats["learner_updates"]),
        "training_wall_s": round(stats.get("training_wall_s", 0.0), 1),
        "env_steps_per_s": round(stats["env_steps"] / max(stats.get("training_wall_s", 0.0), 1e-9), 1),
        "stop_reason": stats.get("stop_reason"), "achieved_utd": round(float(stats.get("utd", 0.0)), 2),
        "eval_episodes": episodes, "eval_return": torch_eval["mean_return"], "success_rate": torch_eval["success_rate"],
        "onnx_eval_return": onnx_eval["mean_return"], "onnx_success_rate": onnx_eval["success_rate"],
        "onnx_path": exported["path"], "onnx_sha256": exported["sha256"],
        "onnx_parity_max_abs_err": exported["parity_max_abs_err"], "demo_transitions": stats.get("demo_transitions", 0),
        "rejected_messages": stats.get("rejected", {}),
    }
    # the env's own figures (lap times for the RC car): final evaluation, and training milestones from the actor's log
    episode_records = read_jsonl(run.logs / TASK_EPISODE_LOG)
    if torch_eval["task_metrics"] is not None:
        report.update(task_metrics=without_milestones(torch_eval["task_metrics"]),
                      onnx_task_metrics=without_milestones(onnx_eval["task_metrics"]))
    if config.intervention is not None:
        report["interventions"] = intervention_summary(read_jsonl(run.logs / INTERVENTION_LOG), config.intervention,
                                                       stats.get("interventions"))
    if episode_records:
        report.update(training_milestones=training_milestones(episode_records),
                      training_sim_time_s=round(sum(float(r.get("sim_time_s") or 0.0) for r in episode_records), 1))
    if uses_classifier(config.reward):  # the success rates above are the true task's; this is the classifier's record
        report.update(classifier_reward=classifier_training_summary(episode_records))
    return write_report(run, report)


def train(config_path, run_dir=None, max_env_steps=None, max_minutes=None, seed=None, quiet=False, log=print) -> dict:
    start = time.monotonic()
    run, config = prepare_run(config_path, run_dir, max_env_steps=max_env_steps, max_minutes=max_minutes, seed=seed)
    log(f"run directory: {run.root}")
    if config.demos.source == "expert" and config.demos.episodes > 0:
        if len(episode_paths(run.demos)) < config.demos.episodes:
            record_expert_demos(config, run.demos, config.demos.episodes, log)
    elif config.demos.source != "none":
        raise ConfigError(f"{run.config}: demos.source '{config.demos.source}' is not supported")
    train_start = time.monotonic()
    stats = run_training(run, config, quiet)
    stats["training_wall_s"] = time.monotonic() - train_start
    log(f"training ended ({stats.get('stop_reason')}): {stats['env_steps']} env steps, {stats['learner_updates']} updates")
    report = finalize(run, config, stats, time.monotonic() - start, log)
    log(f"report: {run.root / 'report.md'}")
    return report
