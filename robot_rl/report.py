"""The end-of-session report: report.json, report.md and a learning-curve PNG."""

from __future__ import annotations

import json
from pathlib import Path

from robot_rl.rundir import RunDir, read_jsonl, write_json_atomic


def training_milestones(episode_records: list[dict]) -> dict:
    """When each task milestone (``*_step`` figure, e.g. ``first_lap_step``) first happened in training.

    ``episode_records`` are the actor's per-episode task figures in order (``logs/task_episodes.jsonl``);
    simulated seconds add up the ``sim_time_s`` of the episodes before the one that reached it.
    """
    names = dict.fromkeys(k[:-5] for record in episode_records for k in record if k.endswith("_step"))
    out = {}
    for name in names:
        sim_before, out[name] = 0.0, None
        for record in episode_records:
            if record.get(f"{name}_env_steps") is not None:
                sim_in = record.get(f"{name}_sim_s")
                out[name] = {"env_steps": record[f"{name}_env_steps"], "wall_s": record.get(f"{name}_wall_s"),
                             "sim_s": None if sim_in is None else round(sim_before + sim_in, 1)}
                break
            sim_before += float(record.get("sim_time_s") or 0.0)
    return out


def without_milestones(metrics: dict | None) -> dict | None:
    """Task figures without the per-episode milestone bookkeeping (``*_step``, ``*_sim_s`` of milestones)."""
    if metrics is None:
        return None
    milestones = {k[:-5] for k in metrics if k.endswith("_step")}
    return {k: v for k, v in metrics.items()
            if not k.endswith("_step") and not any(k.startswith(f"{m}_") for m in milestones)}


def intervention_summary(episodes: list[dict], config, learner_stats: dict | None, bins: int = 5) -> dict:
    """Interventions per episode and the intervened share of steps over training (``logs/interventions.jsonl``)."""
    steps = sum(e["length"] for e in episodes)
    summary = {"mode": config.mode, "device": config.device, "episodes": len(episodes),
               "takeovers_per_episode": round(sum(e["takeovers"] for e in episodes) / max(len(episodes), 1), 3),
               "intervened_share": round(sum(e["intervened_steps"] for e in episodes) / max(steps, 1), 4),
               "safe_hold_steps": sum(e.get("safe_hold_steps", 0) for e in episodes), "share_over_time": []}
    # equal runs of consecutive episodes: the share should fall as the policy needs the human less
    size = max(-(-len(episodes) // bins), 1)
    for start in range(0, len(episodes), size):
        chunk = episodes[start:start + size]
        length = max(sum(e["length"] for e in chunk), 1)
        summary["share_over_time"].append({"env_steps": chunk[-1]["env_steps"],
                                           "intervened_share": round(sum(e["intervened_steps"] for e in chunk) / length, 4),
                                           "takeovers_per_episode": round(sum(e["takeovers"] for e in chunk) / len(chunk), 3)})
    if learner_stats:
        summary.update({k: learner_stats[k] for k in ("demo_added", "bc_episodes") if k in learner_stats})
    return summary


def plot_learning_curve(evals: list[dict], out: Path, title: str) -> Path | None:
    if not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [e["env_steps"] for e in evals]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(steps, [e["eval_return"] for e in evals], "o-", color="tab:blue", label="eval return")
    ax.set_xlabel("env steps")
    ax.set_ylabel("mean eval return", color="tab:blue")
    if any(e.get("success_rate") is not None for e in evals):
        ax2 = ax.twinx()
        ax2.plot(steps, [e.get("success_rate") or 0.0 for e in evals], "s--", color="tab:green", label="success rate")
        ax2.set_ylim(-0.05, 1.05)
        ax2.set_ylabel("success rate", color="tab:green")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_report(run: RunDir, report: dict) -> dict:
    evals = read_jsonl(run.eval_log)
    task_evals: dict[int, list[dict]] = {}  # by env steps, in order: the final evaluation may share its step count
    for record in read_jsonl(run.logs / "task_evals.jsonl"):
        task_evals.setdefault(record["env_steps"], []).append(record)
    curve = plot_learning_curve(evals, run.root / "learning_curve.png", report["task"])
    report = {**report, "learning_curve": curve.name if curve else None}
    write_json_atomic(run.root / "report.json", report)

    def fmt(value):
        if value is None:
            return "n/a"
        if isinstance(value, float):
            return f"{value:.2e}" if 0 < abs(value) < 1e-3 else f"{value:.3f}"
        return str(value)

    rows = [
        ("task", report["task"]), ("seed", report["seed"]), ("env steps", report["env_steps"]),
        ("wall time (s)", report["wall_s"]), ("learner updates", report["learner_updates"]),
        ("stop reason", report.get("stop_reason")),
        ("eval episodes", report["eval_episodes"]), ("eval return (torch)", report["eval_return"]),
        ("success rate (torch)", report.get("success_rate")),
        ("eval return (ONNX, onnxruntime)", report.get("onnx_eval_return")),
        ("success rate (ONNX, onnxruntime)", report.get("onnx_success_rate")),
        ("ONNX parity max abs error", report.get("onnx_parity_max_abs_err")),
        ("ONNX file", report.get("onnx_path")),
    ]
    task = report.get("task_metrics") or {}
    rows += [(f"{name.replace('_', ' ')} (torch eval)", value) for name, value in task.items()]
    if report.get("training_sim_time_s"):  # 0 for tasks that log episode figures but no simulated time
        rows.append(("simulated driving time in training (s)", report["training_sim_time_s"]))
    # reward from the image classifier: its episode verdicts against the true task over training
    classifier = report.get("classifier_reward") or {}
    rows += [(f"classifier reward, training: {k.replace('_', ' ')}", v) for k, v in classifier.items()]
    for name, when in (report.get("training_milestones") or {}).items():
        label = name.replace("_", " ")
        if when is None:
            rows.append((f"{label}: not reached in training", None))
        else:
            rows += [(f"{label}: env steps", when["env_steps"]), (f"{label}: actor wall time (s)", when["wall_s"]),
                     (f"{label}: simulated time (s)", when["sim_s"])]
    hil = report.get("interventions")
    if hil:
        rows += [("intervention mode / device", f"{hil['mode']} / {hil['device']}"),
                 ("takeovers per training episode", hil["takeovers_per_episode"]),
                 ("intervened share of training steps", hil["intervened_share"])]
    lines = [f"# Session report: {report['task']}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {fmt(value)} |" for name, value in rows]
    if hil and hil["share_over_time"]:
        lines += ["", "| up to env steps | intervened share | takeovers per episode |", "|---|---|---|"]
        lines += [f"| {b['env_steps']} | {b['intervened_share']:.3f} | {b['takeovers_per_episode']:.2f} |"
                  for b in hil["share_over_time"]]
    if curve:
        lines += ["", f"![learning curve]({curve.name})"]
    if evals:
        figures = (k for records in task_evals.values() for e in records for k in without_milestones(e))
        task_keys = list(dict.fromkeys(k for k in figures if k not in ("env_steps", "policy_version")))
        lines += ["", "| env steps | eval return | success rate |" + "".join(f" {k} |" for k in task_keys),
                  "|---|---|---|" + "---|" * len(task_keys)]
        for e in evals:
            pending = task_evals.get(e["env_steps"])
            task = pending.pop(0) if pending else {}
            lines.append(f"| {e['env_steps']} | {e['eval_return']:.2f} | {fmt(e.get('success_rate'))} |"
                         + "".join(f" {fmt(task.get(k))} |" for k in task_keys))
    (run.root / "report.md").write_text("\n".join(lines) + "\n")
    return report


def read_report(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / "report.json").read_text())
