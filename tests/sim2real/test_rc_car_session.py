"""The RC car task through the session machinery: launch file, gymnasium id, scripted expert demo."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from robot_rl.actor import TASK_EPISODE_LOG, Actor, evaluate_policy, task_metrics
from robot_rl.config import load_session
from robot_rl.envs import make_env, make_expert
from robot_rl.report import training_milestones
from robot_rl.rundir import RunDir, read_jsonl
from robot_rl.session import train
from robot_rl.spaces import flatten_obs, obs_spec_from_space
from sim2real.rc_car.expert import RCCarExpert


def test_launch_file_builds_the_pixel_env_and_its_expert_drives_a_lap():
    config = load_session("launch/sim_rc_car.yaml")
    assert config.learner.num_critics == 10 and config.learner.utd == 8
    env = make_env(config, max_episode_steps=400)
    spec = obs_spec_from_space(env.observation_space)
    assert spec.image_shapes == {"camera": (64, 64, 3)} and spec.state_dim == 13
    expert = make_expert(env)
    obs, _ = env.reset(seed=0)
    for _ in range(400):
        flat = flatten_obs(spec, obs)
        assert flat["state"].dtype == np.float32 and np.all(np.isfinite(flat["state"]))
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        assert not terminated
    assert truncated and info["laps"] == 1 and info["is_success"]  # the slow demo lap takes ≈32 s


def test_state_only_id():
    config = load_session("launch/sim_rc_car.yaml").model_copy(update={"env": "robot_rl/RCCarRaceState-v0"})
    env = make_env(config)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (26,) and obs.dtype == np.float32


def _expert_episode(env, mode: str) -> dict:
    expert = RCCarExpert(env.unwrapped, mode)
    obs, _ = env.reset(seed=0)
    while True:
        obs, _, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            return info


def test_lap_metrics_of_the_scripted_drivers():
    config = load_session("launch/sim_rc_car_state.yaml")
    env = make_env(config)
    slow = _expert_episode(env, "slow")
    metrics = task_metrics(env, [slow, slow])
    # the slow demo lap: 323 steps = 32.3 s from a standing start, no recovery (measured, bench/rc_car.py)
    assert metrics["laps"] == 2 and metrics["first_lap_step"] == 323 and metrics["recoveries_per_lap"] == 0
    assert metrics["best_lap_time_s"] == pytest.approx(32.3) and metrics["first_lap_sim_s"] == pytest.approx(32.3)
    assert metrics["sim_time_s"] == pytest.approx(120.0) and metrics["lap_within_bar_step"] is None
    assert metrics["lap_time_ratio"] == pytest.approx(32.3 / metrics["expert_best_lap_s"])
    # the fast expert sets the bar, so its own laps are within it
    result = evaluate_policy(env, RCCarExpert(env.unwrapped, "fast").act, episodes=1, seed=0)
    fast = result["task_metrics"]
    assert fast["best_lap_time_s"] == pytest.approx(fast["expert_best_lap_s"]) and fast["lap_within_bar_step"] is not None
    assert fast["laps"] >= 5 and fast["mean_lap_time_s"] >= fast["best_lap_time_s"]


def test_actor_turns_lap_milestones_into_run_steps_and_times(tmp_path):
    config = load_session("launch/sim_rc_car_state.yaml")
    run = RunDir(tmp_path / "run")
    actor = Actor(run, config)
    no_lap = {**_expert_episode(actor.env, "slow"), "lap_times_s": [], "lap_steps": [], "lap_end_sim_s": []}
    lap = _expert_episode(actor.env, "slow")
    wall_s = [0.01 * (i + 1) for i in range(600)]
    actor.episode_task_metrics(no_lap, 0, wall_s)
    metrics = actor.episode_task_metrics(lap, 600, wall_s)
    assert metrics["first_lap_env_steps"] == 923 and metrics["first_lap_wall_s"] == pytest.approx(3.23)
    records = read_jsonl(run.logs / TASK_EPISODE_LOG)
    assert [r["start_env_steps"] for r in records] == [0, 600]
    milestones = training_milestones(records)
    assert milestones["first_lap"] == {"env_steps": 923, "wall_s": 3.23, "sim_s": pytest.approx(92.3)}
    assert milestones["lap_within_bar"] is None


def test_short_session_reports_lap_figures(tmp_path):
    """Plumbing only: 450 steps are far too few for a lap (the first comes at ~2,750 steps, bench/rc_car.py)."""
    data = yaml.safe_load(open("launch/sim_rc_car_state.yaml"))
    data["env_kwargs"]["max_episode_steps"] = 150
    data["learner"].update(warmup_steps=300, utd=1, hidden_dims=[64, 64])
    data["demos"]["only_successful"] = False  # 150 steps are too short for the slow demo lap
    data["train"].update(max_env_steps=450, eval_every_env_steps=300, eval_episodes=1, final_eval_episodes=1)
    path = tmp_path / "rc.yaml"
    path.write_text(yaml.safe_dump(data))
    run = RunDir(tmp_path / "run")
    report = train(path, run_dir=run.root, quiet=True, log=lambda *_: None)

    records = read_jsonl(run.logs / TASK_EPISODE_LOG)
    assert [r["start_env_steps"] for r in records] == [0, 150, 300]
    assert all(r["sim_time_s"] >= 15.0 for r in records)  # 150 steps of 0.1 s, plus any recovery manoeuvres
    assert report["training_sim_time_s"] == pytest.approx(sum(r["sim_time_s"] for r in records), abs=0.1)
    assert set(report["training_milestones"]) == {"first_lap", "lap_within_bar"}
    task = report["task_metrics"]
    assert task["expert_best_lap_s"] == pytest.approx(8.3, abs=0.5) and isinstance(task["laps"], int)
    assert not any(k.endswith("_step") for k in task)
    evals = read_jsonl(run.logs / "task_evals.jsonl")
    assert [e["env_steps"] for e in evals] == [300, 450]
    markdown = (run.root / "report.md").read_text()
    assert "expert best lap s (torch eval)" in markdown and "first lap" in markdown
    assert json.loads((run.root / "report.json").read_text())["task_metrics"] == task
