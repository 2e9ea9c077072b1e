"""``robot-rl train CONFIG``: a whole session, ending in an evaluated, exported policy and a report."""

from __future__ import annotations

import json

REPORT_SUMMARY = ("task", "env_steps", "wall_s", "learner_updates", "eval_return", "success_rate",
                  "onnx_eval_return", "onnx_success_rate")


def run(args) -> int:
    from robot_rl.vectorized import is_vectorized_session, train_vectorized
    from robot_rl.world_model_trainer import is_world_model_session

    if is_vectorized_session(args.config):  # `trainer: vectorized`: in-process, many envs (quadrotor)
        train = train_vectorized
    elif is_world_model_session(args.config):  # `trainer: world_model`: in-process TD-MPC2-style planner
        from robot_rl.world_model_trainer import train_world_model as train
    else:
        from robot_rl.session import train
    report = train(args.config, run_dir=args.run_dir, max_env_steps=args.max_env_steps, max_minutes=args.max_minutes,
                   seed=args.seed, quiet=args.quiet)
    print(json.dumps({k: report.get(k) for k in REPORT_SUMMARY}))
    return 0


def register(sub) -> None:
    parser = sub.add_parser("train", help="run a training session (learner + actor), then evaluate, export and report")
    parser.add_argument("config", help="session file, e.g. launch/sim_pick_cube.yaml")
    parser.add_argument("--run-dir", help="run directory (default runs/<name>); an existing one is resumed")
    parser.add_argument("--max-env-steps", type=int)
    parser.add_argument("--max-minutes", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
