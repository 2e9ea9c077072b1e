"""Learning outcome of the whole actor/learner stack on Pendulum-v1 (fixed seed)."""

import pytest
import yaml

from robot_rl.session import train


@pytest.mark.slow
def test_pendulum_learns_within_5000_steps(tmp_path):
    config = tmp_path / "pendulum.yaml"
    config.write_text(yaml.safe_dump({
        "name": "pendulum_learning", "env": "Pendulum-v1", "seed": 0,
        "learner": {"num_critics": 2, "utd": 1, "discount": 0.99, "warmup_steps": 1000, "demo_ratio": 0.0},
        "train": {"max_env_steps": 5000, "eval_every_env_steps": 1000, "eval_episodes": 5, "final_eval_episodes": 10},
    }))
    report = train(config, run_dir=tmp_path / "run", quiet=True, log=lambda *_: None)
    # measured on 2 cores: seed 0 -> -147, seed 1 -> -150 after 5000 steps (random policy: about -1200);
    # -250 leaves room for scheduling differences in the actor/learner pacing
    assert report["eval_return"] >= -250
    assert report["onnx_eval_return"] >= -250
