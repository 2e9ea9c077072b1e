"""The robot-rl command line: every subcommand is registered; errors a person causes end in one sentence."""

from robot_rl.cli import build_parser, main


def test_every_subcommand_is_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"train", "export", "deploy", "doctor", "keys", "calibrate", "train-reward"} <= set(sub.choices)


def test_calibrate_reaches_the_calibration_tool(tmp_path, capsys):
    assert main(["calibrate", "intrinsics", str(tmp_path / "missing"), "--board", "9x6", "--square-mm", "25"]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "Traceback" not in err
