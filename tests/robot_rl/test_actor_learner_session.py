"""A short session with learner and actor as separate processes over ZeroMQ on loopback."""

import json

import numpy as np
import onnx
import pytest
import yaml

from robot_rl.rundir import RunDir, read_jsonl
from robot_rl.session import train

REPORT_KEYS = {"task", "env_steps", "wall_s", "learner_updates", "eval_return", "success_rate", "onnx_success_rate",
               "onnx_eval_return", "eval_episodes", "seed"}


def _write(tmp_path, data):
    path = tmp_path / "session.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_pendulum_session_streams_transitions_and_advances_weights(tmp_path):
    config = _write(tmp_path, {
        "name": "pendulum_short", "env": "Pendulum-v1", "seed": 3,
        "learner": {"hidden_dims": [64, 64], "num_critics": 4, "utd": 1, "warmup_steps": 200, "batch_size": 64,
                    "weight_publish_every": 20, "demo_ratio": 0.0},
        "train": {"max_env_steps": 800, "eval_every_env_steps": 400, "eval_episodes": 2, "final_eval_episodes": 3,
                  "checkpoint_every_updates": 250},
    })
    run = RunDir(tmp_path / "run")
    report = train(config, run_dir=run.root, quiet=True, log=lambda *_: None)

    status = json.loads(run.status.read_text())
    assert status["env_steps"] == 800  # every transition the actor produced arrived
    assert status["learner_updates"] == 601  # UTD 1 after 200 warm-up steps (+1 at the boundary)
    assert status["policy_version"] >= 25  # published every 20 updates
    (actor,) = status["actors"].values()
    assert actor["received"] == 800
    assert actor["policy_version"] >= 25  # the actor swapped weights and stamped its transitions
    assert status["rejected"] == {}

    assert REPORT_KEYS <= set(report)
    assert report["env_steps"] == 800 and report["eval_episodes"] == 3
    assert report["onnx_parity_max_abs_err"] <= 1e-5
    assert report["onnx_eval_return"] == pytest.approx(report["eval_return"], abs=1e-3)
    assert (run.root / "report.md").read_text().startswith("# Session report")
    assert (run.root / "learning_curve.png").stat().st_size > 1000
    assert [e["env_steps"] for e in read_jsonl(run.eval_log)][:2] == [400, 800]
    assert list(run.checkpoints.glob("ckpt_*.pt")) and run.final_policy.exists()
    assert any(run.logs.glob("events.out.tfevents.*"))  # TensorBoard

    model = onnx.load(report["onnx_path"])
    assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer)
    spec = json.loads({p.key: p.value for p in model.metadata_props}["robot_rl.spec"])
    assert spec["obs_spec"]["state_dim"] == 3 and spec["action_low"] == [-2.0]
    assert spec["policy_version"] == status["policy_version"]
    batch = {i.name: np.zeros((5, 3), np.float32) for i in model.graph.input}
    import onnxruntime as ort

    assert ort.InferenceSession(report["onnx_path"]).run(None, batch)[0].shape == (5, 1)  # dynamic batch
    assert not any(run.spool.glob("*/*/seg_*"))  # every spooled transition was acknowledged and trimmed

    # `train` again on the same run directory resumes without a prompt: replay and update counter continue
    report = train(config, run_dir=run.root, max_env_steps=1000, quiet=True, log=lambda *_: None)
    first, second = read_jsonl(run.logs / "resume.jsonl")
    assert first["learner_updates"] == 0 and second["learner_updates"] == 601  # from the final checkpoint
    assert second["env_steps"] == second["replay_loaded"] == 800  # the replay store reloaded from disk
    status = json.loads(run.status.read_text())
    assert report["env_steps"] == status["env_steps"] == 1000 and status["learner_updates"] == 801


@pytest.mark.slow
def test_pixel_pick_cube_runs_end_to_end(tmp_path):
    """Actor renders two cameras, learner trains the CNN with DrQ, the export includes the encoder."""
    config = _write(tmp_path, {
        "name": "pixels_short", "env": "robot_rl/PickCubePixels-v0", "seed": 0,
        "env_kwargs": {"image_size": 64},
        "learner": {"hidden_dims": [64, 64], "num_critics": 2, "utd": 1, "warmup_steps": 100, "batch_size": 16,
                    "image_encoder_channels": [8, 8], "image_encoder_strides": [2, 2], "image_latent_dim": 16,
                    "weight_publish_every": 25, "replay_capacity": 2000},
        "demos": {"source": "expert", "episodes": 2},
        "train": {"max_env_steps": 250, "eval_every_env_steps": 250, "eval_episodes": 1, "final_eval_episodes": 2},
    })
    run = RunDir(tmp_path / "run")
    report = train(config, run_dir=run.root, quiet=True, log=lambda *_: None)
    assert report["env_steps"] == 250 and report["learner_updates"] >= 150
    assert report["demo_transitions"] > 0
    assert report["env_steps_per_s"] > 0
    model = onnx.load(report["onnx_path"])
    assert [i.name for i in model.graph.input] == ["state", "front", "wrist"]
    assert report["onnx_parity_max_abs_err"] <= 1e-5
