"""``robot-rl export --format onnx`` on state and pixel pick-cube runs: one file, embedded spec, parity with torch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_runs import PIXEL_SESSION, STATE_SESSION, make_run, torch_policy

from policies.export.onnx_export import OPSET, ExportError, content_hash, export_onnx, read_spec
from robot_rl.commands import export as export_command
from robot_rl.commands.export import export_run
from robot_rl.episodes import episode_paths, read_episode

torch.set_num_threads(1)
PARITY_TOLERANCE = 1e-5  # the bound for float32


@pytest.fixture(scope="module")
def state_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("state") / "run", STATE_SESSION, demos=5)


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("pixels") / "run", PIXEL_SESSION, demos=1)


def recorded_observations(run) -> dict[str, np.ndarray]:
    episodes = [read_episode(p) for p in episode_paths(run.demos)]
    keys = [k[len("obs/"):] for k in episodes[0] if k.startswith("obs/")]
    return {k: np.concatenate([e[f"obs/{k}"] for e in episodes]) for k in keys}


def onnxruntime_actions(path, obs: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["action"], {i.name: obs[i.name] for i in session.get_inputs()})[0]


def torch_actions(policy, obs: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return policy({k: torch.from_numpy(v) for k, v in obs.items()}).numpy()


def test_state_export_is_one_file_with_spec_and_matches_torch(state_run, tmp_path):
    manifest = export_run(state_run.root, "onnx", tmp_path / "out")
    path = tmp_path / "out" / "policy.onnx"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["export.json", "policy.onnx"]  # no sidecar
    model = onnx.load(str(path))
    assert not any(init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer)
    assert model.opset_import[0].version == OPSET

    spec = read_spec(path)
    assert spec["obs_layout"] == [["ee_pos", 3], ["ee_vel", 3], ["gripper_width", 1], ["cube_pos", 3], ["cube_rel_ee", 3]]
    assert spec["action_layout"] == [["ee_delta_xyz", 3], ["gripper", 1]]
    assert spec["control_hz"] == 10.0 and spec["action_dim"] == 4 and spec["session"] == "export_state"
    assert spec["training_run"] == str(state_run.root.resolve()) and "normalization" in spec
    assert spec["sha256"] == content_hash(model) == manifest["onnx"]["sha256"]

    obs = recorded_observations(state_run)
    assert len(obs["state"]) >= 64
    expected = torch_actions(torch_policy(state_run), obs)
    actions = onnxruntime_actions(path, obs)  # the whole recording as one batch: the batch axis is dynamic
    assert actions.shape == expected.shape
    assert np.max(np.abs(actions - expected)) <= PARITY_TOLERANCE
    assert manifest["onnx"]["parity_max_abs_err"] <= PARITY_TOLERANCE


def test_pixel_export_includes_the_image_encoder_and_matches_torch(pixel_run, tmp_path):
    manifest = export_run(pixel_run.root, "onnx", tmp_path / "out")
    path = tmp_path / "out" / "policy.onnx"
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["state", "front", "wrist"]
    assert any(node.op_type == "Conv" for node in model.graph.node)
    obs = recorded_observations(pixel_run)
    assert obs["front"].dtype == np.uint8 and obs["front"].shape[1:] == (64, 64, 3)
    error = np.max(np.abs(onnxruntime_actions(path, obs) - torch_actions(torch_policy(pixel_run), obs)))
    assert error <= PARITY_TOLERANCE
    assert manifest["onnx"]["parity_max_abs_err"] <= PARITY_TOLERANCE


def test_export_fails_when_parity_does_not_hold(state_run, tmp_path):
    policy = torch_policy(state_run)
    obs = recorded_observations(state_run)
    spec = {"obs_spec": {"state_dim": 13, "image_shapes": {}, "state_keys": []}}
    with pytest.raises(ExportError, match="parity check failed"):
        export_onnx(policy, spec, tmp_path / "policy.onnx", obs, tolerance=-1.0)  # no error can be below zero
    assert not (tmp_path / "policy.onnx").exists() and (tmp_path / "policy.onnx.failed").exists()


def test_export_falls_back_to_the_newest_checkpoint(state_run, tmp_path):
    weights = state_run.final_policy.read_bytes()
    from robot_rl.acting import weights_from_bytes

    state = weights_from_bytes(weights)
    agent = {part: {k[len(part) + 1:]: v for k, v in state.items() if k.startswith(part + ".")} for part in ("encoder", "actor")}
    run = make_run(tmp_path / "run", STATE_SESSION, demos=0)
    run.final_policy.unlink()
    torch.save({"agent": agent, "counters": {}}, run.checkpoints / "ckpt_000000100.pt")
    manifest = export_run(run.root, "onnx", tmp_path / "out")
    assert manifest["weights"].endswith("ckpt_000000100.pt")
    assert manifest["onnx"]["parity_samples"] == 256  # no demos: parity runs on env rollouts


def test_cli_names_a_missing_run_in_one_sentence(tmp_path, capsys):
    args = type("Args", (), {"run": str(tmp_path / "nowhere"), "format": "onnx", "out": str(tmp_path / "out")})
    assert export_command.run(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("pass the directory robot-rl train wrote.") and "\n" not in err


def test_cli_prints_one_json_line(state_run, tmp_path, capsys):
    args = type("Args", (), {"run": str(state_run.root), "format": "onnx", "out": str(tmp_path / "out")})
    assert export_command.run(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["parity_max_abs_err"] <= PARITY_TOLERANCE and summary["format"] == "onnx"
