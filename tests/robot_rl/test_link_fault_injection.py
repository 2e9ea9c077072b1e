"""Fault injection: learner and actor processes are each killed with SIGKILL at seeded random moments,
restarted, and the session goes on. Afterwards the replay store holds exactly what the actor spooled."""

import json
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict

import numpy as np
import pytest
import yaml

from robot_rl.learner import latest_checkpoint
from robot_rl.replay import ReplayStore, transition_digest
from robot_rl.rundir import read_jsonl
from robot_rl.session import child_env, prepare_run
from robot_rl.spaces import ObsSpec
from robot_rl.transport.spool import audit_spool
from robot_rl.transport.wire import decode

KILLS_EACH = 5
SEED = 20261121
MAX_ENV_STEPS = 2500


def _start(kind, run, log):
    args = [sys.executable, "-m", f"robot_rl.{kind}", str(run.root)]
    if kind == "actor":
        args.append("--keep-acked-spool")  # the audit below needs every spooled transition, acknowledged or not
    return subprocess.Popen(args, env=child_env(), stdout=log, stderr=subprocess.STDOUT)


def _wait_ready(kind, run, proc, timeout_s=60.0):
    """Learner: its pid in endpoints.json. Actor: a spool folder for a new session appeared."""
    deadline = time.monotonic() + timeout_s
    before = set((run.spool / "actor0").glob("*")) if kind == "actor" else None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the {kind} exited early with code {proc.returncode}"
        if kind == "learner":
            try:
                if json.loads(run.endpoints.read_text())["pid"] == proc.pid:
                    return
            except (OSError, ValueError, KeyError):
                pass
        elif set((run.spool / "actor0").glob("*")) - before:
            return
        time.sleep(0.05)
    raise AssertionError(f"the {kind} did not come up within {timeout_s} s")


def _produced(run):
    """(actor_session, seq) -> content digest of every transition that reached the actor's spool.

    Mid-episode the actor spools only next_obs; the observation is the previous transition's next_obs.
    """
    produced, last_next = {}, {}
    for (session, seq), frames in sorted(audit_spool(run.spool / "actor0").items()):
        _, h, a, _ = decode(frames)
        obs = {"state": a["obs/state"]} if "obs/state" in a else last_next[session]
        last_next[session] = {"state": a["next_obs/state"]}
        produced[(session, seq)] = transition_digest(session, seq, obs, a["action"], h["reward"], h["terminated"],
                                                     h["truncated"], last_next[session])
    return produced


@pytest.mark.slow
def test_sigkill_learner_and_actor_lose_nothing(tmp_path):
    config = tmp_path / "session.yaml"
    config.write_text(yaml.safe_dump({
        "name": "kill9", "env": "Pendulum-v1", "seed": 5,
        "learner": {"hidden_dims": [32, 32], "num_critics": 2, "utd": 1, "warmup_steps": 100, "batch_size": 32,
                    "weight_publish_every": 20, "demo_ratio": 0.0, "replay_capacity": 5000},
        "train": {"max_env_steps": MAX_ENV_STEPS, "eval_every_env_steps": 100_000, "eval_episodes": 1,
                  "checkpoint_every_updates": 50, "max_minutes": 4},
    }))
    run, _ = prepare_run(config, tmp_path / "run")
    rng = random.Random(SEED)
    targets = ["learner"] * KILLS_EACH + ["actor"] * KILLS_EACH
    rng.shuffle(targets)
    kills = defaultdict(int)
    expected_resume_updates = []
    with open(run.logs / "learner.log", "ab") as learner_log, open(run.logs / "actor.log", "ab") as actor_log:
        logs = {"learner": learner_log, "actor": actor_log}
        procs = {"learner": _start("learner", run, learner_log)}
        _wait_ready("learner", run, procs["learner"])
        procs["actor"] = _start("actor", run, actor_log)
        _wait_ready("actor", run, procs["actor"])
        try:
            for target in targets:
                time.sleep(rng.uniform(0.1, 0.9))  # a random moment of the running session
                assert all(p.poll() is None for p in procs.values()), "the session ended before all kills were done"
                procs[target].send_signal(signal.SIGKILL)
                procs[target].wait()
                kills[target] += 1
                if target == "learner":
                    checkpoint = latest_checkpoint(run)
                    expected_resume_updates.append(int(checkpoint.stem.split("_")[1]) if checkpoint else 0)
                procs[target] = _start(target, run, logs[target])
                _wait_ready(target, run, procs[target])
            assert procs["actor"].wait(timeout=90) == 0
            assert procs["learner"].wait(timeout=60) == 0
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    assert kills == {"learner": KILLS_EACH, "actor": KILLS_EACH}
    produced = _produced(run)
    store = ReplayStore(run.replay / "online", ObsSpec(3), 1)
    stored = {}
    for header, obs, action, next_obs in store.iter_transitions():
        key = (header["actor_session"], header["seq"])
        assert key not in stored, f"duplicate {key} in the replay store"
        stored[key] = transition_digest(*key, obs, action, header["reward"], header["terminated"], header["truncated"],
                                        next_obs)
    assert len(stored) == store.count == len(produced)
    assert stored.keys() == produced.keys()  # no gaps, nothing extra
    assert stored == produced  # same content, byte for byte
    by_session = defaultdict(list)
    for session, seq in stored:
        by_session[session].append(seq)
    assert len(by_session) == KILLS_EACH + 1  # one session per actor process
    assert all(sorted(seqs) == list(range(len(seqs))) for seqs in by_session.values())
    assert len(stored) == MAX_ENV_STEPS  # a restarted actor continues the run's step count

    resumes = read_jsonl(run.logs / "resume.jsonl")
    assert len(resumes) == KILLS_EACH + 1
    assert [r["learner_updates"] for r in resumes[1:]] == expected_resume_updates
    assert sum(u > 0 for u in expected_resume_updates) >= 3  # most restarts resumed real training progress
    status = json.loads(run.status.read_text())
    assert status["env_steps"] == MAX_ENV_STEPS and status["stop_reason"] == "max_env_steps"
    assert status["rejected"] == {}
    assert not any((run.spool / "actor0").glob("*/seg_*.spool"))  # everything was acknowledged
    assert np.isfinite(status.get("critic_loss", 0.0))
