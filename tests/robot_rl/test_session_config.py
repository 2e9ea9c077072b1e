"""Session files: the shipped ones load; bad ones fail before anything starts, naming field and file."""

from pathlib import Path

import pytest

from robot_rl.cli import main as cli_main
from robot_rl.config import ConfigError, load_session

LAUNCH = Path(__file__).resolve().parents[2] / "launch"


@pytest.mark.parametrize("name", ["sim_pick_cube.yaml", "sim_pick_cube_pixels.yaml", "pendulum.yaml"])
def test_shipped_sessions_load(name):
    config = load_session(LAUNCH / name)
    assert config.env
    assert config.learner.batch_size > 0


def test_unknown_key_names_field_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nenv: Pendulum-v1\nlearner:\n  num_critic: 4\n")
    with pytest.raises(ConfigError) as err:
        load_session(path)
    assert "learner.num_critic" in str(err.value) and str(path) in str(err.value)


def test_wrong_type_names_field_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nenv: Pendulum-v1\ntrain:\n  max_env_steps: lots\n")
    with pytest.raises(ConfigError) as err:
        load_session(path)
    assert "train.max_env_steps" in str(err.value) and str(path) in str(err.value)


def test_cli_reports_config_error_without_traceback(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nenv: Pendulum-v1\nlearner: {utd: 0}\n")
    assert cli_main(["train", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "learner.utd" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing started


def test_missing_file_is_one_sentence(tmp_path):
    with pytest.raises(ConfigError, match="no such session file"):
        load_session(tmp_path / "nope.yaml")
