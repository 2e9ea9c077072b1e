"""The camera RC-car session end to end (plumbing): encoder path resolved in the run directory, learner and
actor on the embedding env, then one camera-in ONNX graph (encoder + actor) evaluated on the camera env."""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml

from policies.export.onnx_export import read_spec
from robot_rl.config import load_session
from robot_rl.rundir import RunDir
from robot_rl.session import train
from sim2real.rc_car.embedding import DEFAULT_ENCODER
from sim2real.rc_car.encoder import build_encoder, save_encoder


@pytest.mark.slow  # learner and actor processes: ~20 s CPU, up to a minute on a loaded 2-core machine
def test_short_camera_session_exports_a_camera_in_policy(tmp_path):
    data = yaml.safe_load(open("launch/sim_rc_car_camera.yaml"))
    data["env_kwargs"]["max_episode_steps"] = 150
    data["learner"].update(warmup_steps=256, utd=1, num_critics=2, hidden_dims=[32, 32])
    data["demos"]["only_successful"] = False  # 150 steps are too short for the slow demo lap
    data["train"].update(max_env_steps=300, eval_every_env_steps=300, eval_episodes=1, final_eval_episodes=1)
    path = tmp_path / "rc.yaml"
    path.write_text(yaml.safe_dump(data))
    run = RunDir(tmp_path / "run")
    encoder = run.root / DEFAULT_ENCODER
    torch.manual_seed(0)  # an untrained encoder stands in for the pretrained one: the wiring is what is tested here
    save_encoder(encoder, build_encoder(64))
    report = train(path, run_dir=run.root, quiet=True, log=lambda *_: None)

    assert load_session(run.config).env_kwargs["encoder_path"] == str(encoder)  # absolute for the actor processes
    spec = read_spec(report["onnx_path"])
    assert spec["obs_spec"]["image_shapes"] == {"camera": [64, 64, 3]} and spec["obs_spec"]["state_dim"] == 13
    assert spec["env"] == "robot_rl/RCCarRace-v0" and "encoder_path" not in spec["env_kwargs"]
    assert report["onnx_parity_max_abs_err"] <= 1e-4
    # the torch evaluation runs on embeddings, the ONNX one on camera frames: the same deterministic driving
    assert report["onnx_eval_return"] == pytest.approx(report["eval_return"], abs=1e-2)
    assert report["task_metrics"]["expert_best_lap_s"] == pytest.approx(8.3, abs=0.5)
    shutil.rmtree(run.root)
