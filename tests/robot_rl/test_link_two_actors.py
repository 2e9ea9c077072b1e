"""Two actor processes, each with its own CURVE key, feed one learner process over loopback."""

import json
import subprocess
import sys
from collections import defaultdict

import yaml

from robot_rl.replay import ReplayStore
from robot_rl.session import child_env, prepare_run
from robot_rl.spaces import ObsSpec
from robot_rl.transport.keys import ensure_keys
from robot_rl.transport.spool import audit_spool
from robot_rl.transport.wire import decode


def test_two_actors_with_their_own_keys_feed_one_learner(tmp_path):
    config = tmp_path / "session.yaml"
    config.write_text(yaml.safe_dump({
        "name": "two_actors", "env": "Pendulum-v1", "seed": 1,
        "learner": {"hidden_dims": [32, 32], "num_critics": 2, "utd": 1, "warmup_steps": 100, "batch_size": 32,
                    "weight_publish_every": 20, "demo_ratio": 0.0, "replay_capacity": 5000},
        "train": {"max_env_steps": 600, "eval_every_env_steps": 100_000, "eval_episodes": 1, "max_minutes": 3},
    }))
    run, _ = prepare_run(config, tmp_path / "run")
    ensure_keys(run.root, client="robot2")  # what `robot-rl keys RUN --client robot2` does
    env = child_env()
    with open(run.logs / "processes.log", "ab") as log:
        learner = subprocess.Popen([sys.executable, "-m", "robot_rl.learner", str(run.root)], env=env, stdout=log,
                                   stderr=subprocess.STDOUT)
        actors = [
            subprocess.Popen([sys.executable, "-m", "robot_rl.actor", str(run.root), "--keep-acked-spool"], env=env,
                             stdout=log, stderr=subprocess.STDOUT),
            subprocess.Popen([sys.executable, "-m", "robot_rl.actor", str(run.root), "--actor-id", "robot2",
                              "--key-name", "robot2", "--keep-acked-spool"], env=env, stdout=log, stderr=subprocess.STDOUT),
        ]
        try:
            assert learner.wait(timeout=150) == 0, (run.logs / "processes.log").read_text()[-3000:]
            for actor in actors:
                assert actor.wait(timeout=60) == 0, (run.logs / "processes.log").read_text()[-3000:]
        finally:
            for proc in (learner, *actors):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()

    status = json.loads(run.status.read_text())
    assert status["rejected"] == {}  # robot2's own key was accepted
    per_actor_id = defaultdict(int)
    stored = set()
    for header, _, _, _ in ReplayStore(run.replay / "online", ObsSpec(3), 1).iter_transitions():
        key = (header["actor_session"], header["seq"])
        assert key not in stored  # no duplicates
        stored.add(key)
        per_actor_id[header["actor_id"]] += 1
    assert set(per_actor_id) == {"actor0", "robot2"}  # both actors fed it
    # nothing lost: every transition either actor spooled is in the store
    spooled = {}
    for actor_id in ("actor0", "robot2"):
        for (session, seq), frames in audit_spool(run.spool / actor_id).items():
            spooled[(session, seq)] = decode(frames)[1]["actor_id"]
    assert stored == spooled.keys()  # both finished, so everything was acknowledged: measured 600 + 600 of 1,200
    # max_env_steps counts per actor; the learner ends the session when the first actor is done, which stops the other
    assert max(per_actor_id.values()) == 600 and min(per_actor_id.values()) > 50
