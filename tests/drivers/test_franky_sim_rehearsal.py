"""The hardware rehearsal end to end: `robot-rl train launch/franky_sim_reach.yaml`, shortened.

Learner and actor run as processes; the actor's envs start a franky-sim server and drive a FrankyArm
over libfranka's protocol in real time; the final evaluation starts another. Proves the path, not learning.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

pytest.importorskip("franky", reason="franky-control is not installed (pip install franky-control)")
pytest.importorskip("franky_sim", reason="franky-sim is not installed (pip install franky-sim)")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_short_rehearsal_session_moves_the_arm_and_writes_its_report(tmp_path):
    from robot_rl.hardware_envs.franky_reach import SUMMARY_PREFIX
    from robot_rl.session import train

    config = yaml.safe_load((ROOT / "launch" / "franky_sim_reach.yaml").read_text())
    # the module prefix registers the id in the learner and actor processes whether or not sim2real does
    config["env"] = "robot_rl.hardware_envs:" + config["env"]
    # 20 Hz and 1 s episodes: the final evaluation's 256 export-parity steps are real time too
    config["env_kwargs"].update(control_hz=20, max_episode_steps=20, action_scale_m=0.01)
    config["learner"].update(warmup_steps=50, utd=2, batch_size=64)
    config["train"].update(max_env_steps=100, eval_every_env_steps=1000, eval_episodes=1, final_eval_episodes=1)
    session_file = tmp_path / "franky_sim_reach.yaml"
    session_file.write_text(yaml.safe_dump(config))

    run_dir = tmp_path / "run"
    report = train(str(session_file), run_dir=str(run_dir), quiet=True, log=lambda *_: None)

    assert (run_dir / "report.json").exists() and (run_dir / "exports" / "policy.onnx").exists()
    assert report["env_steps"] == 100 and report["learner_updates"] > 0
    log = (run_dir / "logs" / "actor.log").read_text()
    envs = [json.loads(line.split(SUMMARY_PREFIX, 1)[1]) for line in log.splitlines() if SUMMARY_PREFIX in line]
    print(f"\nwall {report['wall_s']} s; actor envs: {envs}")
    training = max(envs, key=lambda e: e["steps"])
    assert training["robot"].startswith("the franky-sim server at 127.")
    assert training["steps"] >= 100 and training["path_length_m"] > 0.1  # the arm moved (random warm-up actions)
