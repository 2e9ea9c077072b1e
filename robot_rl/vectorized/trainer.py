"""``train_vectorized``: the quadrotor session end to end, in one process.

train (``loop.run_training``) -> 1,000-episode hover evaluation -> figure-eight tracking ->
ONNX export (parity-checked) and its evaluation -> C99 export, compiled with the firmware-style
loop and flown in the simulator -> ``report.json`` / ``report.md``.
"""

from __future__ import annotations

import os
import shutil
import time

import numpy as np
import torch
from torch import nn

from policies.symmetric import GroupAveragedPolicy
from robot_rl.rundir import RunDir, start_in_process_run, write_json_atomic
from robot_rl.spaces import ObsSpec
from robot_rl.vectorized.config import VectorSessionConfig, load_vector_session
from robot_rl.vectorized.loop import actor_policy, hover_task, run_training
from sim2real.quadrotor import observation as ob
from sim2real.quadrotor.evaluation import evaluate_hover, evaluate_hover_firmware, figure_eight_rmse

FINAL_EVAL_SEED = 10_000


class StatePolicy(nn.Module):
    """{"state": float[B, 146]} -> action [B, 4]: the observation-dict interface ONNX export expects."""

    def __init__(self, actor: nn.Module):
        super().__init__()
        self.actor = actor

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.actor(obs["state"])


def prepare_vector_run(config_path, run_dir=None, max_env_steps=None, max_minutes=None, seed=None):
    overrides = {"max_env_steps": max_env_steps, "max_seconds": None if max_minutes is None else 60.0 * max_minutes}
    return start_in_process_run(load_vector_session(config_path), run_dir, overrides, seed)


def train_vectorized(config_path, run_dir=None, max_env_steps=None, max_minutes=None, seed=None, quiet=False,
                     log=print) -> dict:
    """Train, evaluate, export; returns the report dict (also written to ``RUN/report.json``)."""
    torch.set_num_threads(1)
    start = time.monotonic()
    run, config = prepare_vector_run(config_path, run_dir, max_env_steps, max_minutes, seed)
    log(f"run directory: {run.root}")
    agent, stats = run_training(config, log=(lambda *_: None) if quiet else log)
    log(f"training ended ({stats['stopped_by']}): {stats['env_steps']} env steps, {stats['learner_updates']} updates "
        f"in {stats['wall_s']:.1f} s")
    torch.save(agent.state_dict(), run.checkpoints / "final_td3.pt")
    report = finalize(run, config, agent, stats, log)
    report["wall_s"] = round(time.monotonic() - start, 1)
    write_report(run, report)
    return report


def finalize(run: RunDir, config: VectorSessionConfig, agent, stats: dict, log=print) -> dict:
    task = hover_task(config)
    episodes = config.final_eval_episodes
    log(f"evaluating the final policy over {episodes} episodes (torch)")
    torch_eval = evaluate_hover(actor_policy(agent), task, episodes, FINAL_EVAL_SEED)
    tracking = figure_eight_rmse(actor_policy(agent), task)

    from policies.export.onnx_export import export_onnx, make_session

    deployed = agent.policy.folded() if isinstance(agent.policy, GroupAveragedPolicy) else agent.actor
    policy = StatePolicy(deployed).eval()
    parity = np.random.default_rng(config.seed).standard_normal((64, ob.ACTOR_OBS_DIM)).astype(np.float32) * 0.3
    spec = {
        "obs_spec": ObsSpec(ob.ACTOR_OBS_DIM).to_dict(),
        "obs_layout": [list(part) for part in ob.ACTOR_OBS_LAYOUT],
        "action_layout": "normalized rpm setpoints M1..M4: rpm = (a + 1) / 2 * rpm_max",
        "action_low": [-1.0] * 4, "action_high": [1.0] * 4,
        "symmetrized": deployed is not agent.actor,  # the actor averaged over sim2real.quadrotor.symmetry.GROUP
        "normalization": {"state_mean": None, "state_std": None, "note": "observations enter unnormalized"},
        "control_hz": round(1.0 / task.dt_s), "env": config.env, "env_kwargs": config.env_kwargs,
        "learner_updates": int(stats["learner_updates"]), "training_run": str(run.root.resolve()), "session": config.name,
    }
    exported = export_onnx(policy, spec, run.exports / "policy.onnx", {"state": parity})
    session = make_session(exported["path"])
    onnx_eval = evaluate_hover(lambda obs: session.run(["action"], {"state": obs})[0], task, episodes, FINAL_EVAL_SEED)

    report = {
        "task": config.env, "session": config.name, "seed": config.seed, "trainer": "vectorized",
        "env_steps": int(stats["env_steps"]), "wall_s": None, "train_wall_s": round(stats["wall_s"], 2),
        "train_cpu_s": round(stats["cpu_s"], 2), "load_avg_1m": round(os.getloadavg()[0], 2),
        "learner_updates": int(stats["learner_updates"]), "stopped_by": stats["stopped_by"],
        "train_env_steps_per_s": round(stats["env_steps_per_s"]), "updates_per_s": round(stats["updates_per_s"], 1),
        "eval_episodes": episodes, "eval_return": torch_eval["mean_return"], "success_rate": torch_eval["success_rate"],
        "onnx_eval_return": onnx_eval["mean_return"], "onnx_success_rate": onnx_eval["success_rate"],
        "onnx_path": exported["path"], "onnx_sha256": exported["sha256"],
        "onnx_parity_max_abs_err": exported["parity_max_abs_err"],
        "hover_success_rate": torch_eval["success_rate"], "policy_symmetrized": config.td3.symmetrize_policy,
        "hover_success_rate_within_l2f_box": torch_eval["success_rate_within_l2f_box"],
        "termination_position_m": task.termination_position_m,
        "mean_position_error_m_at_100": torch_eval["mean_position_error_m_at_100"],
        "mean_position_error_m_at_200": torch_eval["mean_position_error_m_at_200"],
        "final_position_error_m_median": torch_eval["final_position_error_m"],
        "terminated_rate": torch_eval["terminated_rate"],
        **tracking,
        "env_steps_per_update": round(stats["env_steps"] / max(stats["learner_updates"], 1), 2),
        "final_reward_weights": stats["final_reward_weights"], "last_td3_metrics": stats["last_metrics"],
        "periodic_evals": stats["periodic_evals"], "restored_best_eval": stats.get("restored_best_eval"),
    }
    if config.export_c:
        report.update(export_and_fly_c(run, task, exported["path"], config.firmware_eval_episodes, log))
    return report


def export_and_fly_c(run: RunDir, task, onnx_path, episodes: int, log=print) -> dict:
    """C99 policy + firmware loop, compiled with gcc; flies the simulator at 500 Hz (skipped without gcc)."""
    from drivers.quadrotor.firmware import FirmwareLoop, build_firmware_library
    from policies.export.c_codegen import generate_c

    if shutil.which("gcc") is None:
        log("gcc not found; the C policy was not built (install gcc to get the firmware-loop evaluation)")
        return {"c_policy": None}
    generated = generate_c(onnx_path, run.exports / "c", prefix="policy")
    library = build_firmware_library(generated.source.parent, run.exports / "c" / "libquadrotor_firmware.so")
    firmware = FirmwareLoop(library)
    c_eval = evaluate_hover_firmware(firmware, task, episodes, FINAL_EVAL_SEED)
    log(f"C policy in the firmware loop: hover success {c_eval['success_rate']:.2f} over {c_eval['episodes']} episodes")
    return {"c_policy": str(generated.source), "c_firmware_success_rate": c_eval["success_rate"],
            "c_firmware_episodes": c_eval["episodes"], "c_inference_us": firmware.inference_us()}


def write_report(run: RunDir, report: dict) -> dict:
    write_json_atomic(run.root / "report.json", report)
    skip = {"periodic_evals"}
    lines = [f"# {report['session']}: {report['task']} (vectorized TD3)", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in report.items() if key not in skip]
    (run.root / "report.md").write_text("\n".join(lines) + "\n")
    return report
