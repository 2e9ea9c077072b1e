"""``robot-rl export RUN --format onnx|tensorrt|c --out DIR``: freeze a run's policy for deployment.

Every format starts from the ONNX file (embedded spec, parity-checked against torch at export);
``tensorrt`` adds FP32/FP16 engines, ``c`` adds C99 sources (float32 and int8 weights) for a
microcontroller. ``DIR/export.json`` records what was written and the parity figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FORMATS = ("onnx", "tensorrt", "c")
C_WEIGHTS = ("float32", "int8")
MANIFEST = "export.json"


def run_weights(run) -> tuple[dict, str]:
    """The run's actor weights (encoder.* + actor.*): the final policy, else the newest checkpoint."""
    import torch

    from policies.export.onnx_export import ExportError
    from robot_rl.acting import weights_from_bytes

    if run.final_policy.exists():
        return weights_from_bytes(run.final_policy.read_bytes()), str(run.final_policy)
    checkpoints = sorted(run.checkpoints.glob("ckpt_*.pt"))
    if not checkpoints:
        raise ExportError(f"{run.root} has neither {run.final_policy.name} nor a ckpt_*.pt checkpoint: "
                          "train it first (robot-rl train) or point at another run directory.")
    agent = torch.load(checkpoints[-1], map_location="cpu", weights_only=True)["agent"]
    weights = {f"{part}.{k}": v for part in ("encoder", "actor") for k, v in agent[part].items()}
    return weights, str(checkpoints[-1])


def load_run_policy(run_dir: str | Path):
    """(run, config, env, obs spec, ActingPolicy with the run's weights, weights file)."""
    from policies.export.onnx_export import ExportError
    from robot_rl.acting import ActingPolicy
    from robot_rl.config import load_session
    from robot_rl.envs import action_bounds, make_env
    from robot_rl.rundir import RunDir
    from robot_rl.spaces import obs_spec_from_space

    run = RunDir(Path(run_dir))
    if not run.config.is_file():
        raise ExportError(f"{run.root} is not a run directory (no config.yaml): pass the directory robot-rl train wrote.")
    config = load_session(run.config)
    env = make_env(config)
    spec = obs_spec_from_space(env.observation_space)
    low, high = action_bounds(env)
    policy = ActingPolicy(spec, len(low), config.learner, low, high)
    weights, source = run_weights(run)
    policy.load(weights, version=0)
    return run, config, env, spec, policy, source


def run_export_spec(run, config, env, spec) -> dict:
    from policies.export.spec import build_export_spec
    from robot_rl.envs import control_hz

    status = json.loads(run.status.read_text()) if run.status.exists() else {}
    return build_export_spec(env, spec, control_hz=control_hz(env, config), env_id=config.env,
                             env_kwargs=config.env_kwargs, session=config.name, training_run=run.root,
                             policy_version=status.get("policy_version", 0),
                             learner_updates=status.get("learner_updates", 0))


def export_run(run_dir: str | Path, fmt: str, out_dir: str | Path, parity_count: int = 256) -> dict:
    """Export ``run_dir``'s policy as ``fmt`` into ``out_dir``; returns (and writes) the manifest."""
    import torch

    from policies.export.onnx_export import ExportError, export_onnx
    from robot_rl.session import parity_observations

    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r} is not one of {', '.join(FORMATS)}.")
    if fmt == "tensorrt":
        from policies.export.tensorrt_export import require_tensorrt

        require_tensorrt()  # refuse before spending time on the ONNX export
    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    run, config, env, spec, policy, source = load_run_policy(run_dir)
    if fmt == "c" and spec.has_images:
        env.close()
        raise ExportError(f"--format c needs a state-only policy, but this one reads cameras {list(spec.image_keys)}: "
                          "export it with --format onnx or --format tensorrt instead.")
    parity_obs = parity_observations(run, spec, env, count=parity_count)
    export_spec = run_export_spec(run, config, env, spec)
    env.close()
    onnx_path = out_dir / "policy.onnx"
    if config.residual is not None:  # base + residual in one graph where the base is ONNX
        from policies.residual import export_residual_session

        exported, _ = export_residual_session(policy.deploy, config, export_spec, onnx_path, parity_obs, env)
    else:
        exported = export_onnx(policy.deploy, export_spec, onnx_path, parity_obs)
    manifest = {"format": fmt, "run": str(run.root.resolve()), "weights": source, "onnx": exported}
    if fmt == "tensorrt":
        from policies.export.tensorrt_export import build_engines

        manifest["tensorrt"] = build_engines(onnx_path, out_dir, parity_obs)
    elif fmt == "c":
        from policies.export.c_codegen import generate_c

        manifest["c"] = {}
        for weights in C_WEIGHTS:
            generated = generate_c(onnx_path, out_dir / "c" / weights, weights=weights)
            manifest["c"][weights] = {"header": str(generated.header), "source": str(generated.source)}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def run(args) -> int:
    from policies.export.onnx_export import ExportError

    out_dir = args.out or str(Path(args.run) / "exports" / args.format)
    try:
        manifest = export_run(args.run, args.format, out_dir)
    except ExportError as err:
        print(f"robot-rl export: {err}", file=sys.stderr)
        return 1
    summary = {"format": manifest["format"], "out": str(Path(out_dir).resolve()), "onnx_sha256": manifest["onnx"]["sha256"],
               "parity_max_abs_err": manifest["onnx"]["parity_max_abs_err"],
               "parity_samples": manifest["onnx"]["parity_samples"]}
    if "tensorrt" in manifest:
        summary["tensorrt"] = {p: e["parity_vs_onnxruntime_max_abs_err"] for p, e in manifest["tensorrt"]["engines"].items()}
    print(json.dumps(summary))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("export", help="export a run's policy to ONNX, a TensorRT engine or C99")
    parser.add_argument("run", help="run directory written by robot-rl train (runs/<name>)")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--out", help="output directory (default RUN/exports/<format>)")
    parser.set_defaults(func=run)
