"""The end-of-session report: report.json, report.md and a learning-curve PNG."""

from __future__ import annotations

import json
from pathlib import Path

from robot_rl.rundir import RunDir, read_jsonl, write_json_atomic


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
    lines = [f"# Session report: {report['task']}", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {fmt(value)} |" for name, value in rows]
    if curve:
        lines += ["", f"![learning curve]({curve.name})"]
    if evals:
        lines += ["", "| env steps | eval return | success rate |", "|---|---|---|"]
        lines += [f"| {e['env_steps']} | {e['eval_return']:.2f} | {fmt(e.get('success_rate'))} |" for e in evals]
    (run.root / "report.md").write_text("\n".join(lines) + "\n")
    return report


def read_report(run_dir: str | Path) -> dict:
    return json.loads((Path(run_dir) / "report.json").read_text())
