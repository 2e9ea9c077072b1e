"""The robot-rl command line: every subcommand is registered; errors a person causes end in one sentence."""

from robot_rl.cli import build_parser, main


def test_every_subcommand_is_registered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert {"train", "export", "deploy", "doctor", "keys", "calibrate", "train-reward"} <= set(sub.choices)


def test_calibrate_reaches_the_calibration_tool(tmp_path, capsys):
    assert main(["calibrate", "intrinsics", str(tmp_path / "missing"), "--board", "9x6", "--square-mm", "25"]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "Traceback" not in err


def test_pixel_env_renders_without_mujoco_gl_set():
    """A session started from a plain shell (no MUJOCO_GL) still renders its cameras headless."""
    import os
    import subprocess
    import sys

    code = ("from robot_rl.config import session_from_dict; from robot_rl.envs import make_env; "
            "env = make_env(session_from_dict({'name': 'x', 'env': 'robot_rl/PickCubePixels-v0', "
            "'env_kwargs': {'image_size': 32}})); obs, _ = env.reset(seed=0); print(obs['front'].shape, obs['front'].max() > 0)")
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "(32, 32, 3) True" in out.stdout
