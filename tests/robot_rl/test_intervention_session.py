"""Human-in-the-loop sessions: the real actor and learner over ZeroMQ route each mode's steps to the right stores.

The simulated human (`ScriptedIntervener`) takes over a random policy on pick-cube; afterwards the
durable replay store must hold every step with its intervention fields, and a learner rebuilt from it
(the restart path, through the same routing as live) must hold what each mode promises.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import yaml
import zmq

from drivers.arms.base import now_ns
from drivers.teleop.base import InterventionDevice, TeleopReading
from robot_rl.actor import Actor
from robot_rl.config import load_session
from robot_rl.episodes import episode_paths, read_episode
from robot_rl.learner import Learner
from robot_rl.replay import ReplayStore
from robot_rl.rundir import RunDir, read_jsonl
from robot_rl.session import child_env, prepare_run, run_training
from robot_rl.spaces import ObsSpec

STEPS = 120


# short takeovers with gaps, so that intervention segments start and end several times
SHORT_TAKEOVERS = {"patience_steps": 2, "reaction_delay_steps": 1, "agree_steps": 1, "max_takeover_steps": 4}
# the human takes over early and drives to the end: episodes succeed, so there is task reward to ignore
RESCUES = {"patience_steps": 2, "reaction_delay_steps": 1, "agree_steps": 40, "max_takeover_steps": 40,
           "episode_budget_steps": 40}


def session(tmp_path, mode: str, scripted=SHORT_TAKEOVERS, episode_steps: int = 20, **train) -> tuple[RunDir, object]:
    data = {
        "name": f"hil_{mode}", "env": "robot_rl/PickCube-v0", "env_kwargs": {"max_episode_steps": episode_steps},
        "seed": 2,
        "learner": {"hidden_dims": [32, 32], "num_critics": 2, "utd": 1, "warmup_steps": 40, "batch_size": 32,
                    "weight_publish_every": 10},
        "train": {"max_env_steps": STEPS, "eval_every_env_steps": 100_000, "eval_episodes": 1, **train},
        "intervention": {"mode": mode, "scripted": scripted},
    }
    path = tmp_path / "session.yaml"
    path.write_text(yaml.safe_dump(data))
    return prepare_run(path, tmp_path / "run")


def stored_records(run: RunDir, config) -> list[tuple[dict, dict]]:
    spec = ObsSpec.from_dict(json.loads(run.spec.read_text())["obs_spec"])
    store = ReplayStore(run.replay / "online", spec, 4)
    records = list(store.iter_records())
    store.close()
    return records


def run_mode(tmp_path, mode: str, **settings):
    run, config = session(tmp_path, mode, **settings)
    stats = run_training(run, config, quiet=True)
    records = stored_records(run, config)
    assert stats["env_steps"] == len(records) == STEPS and stats["rejected"] == {}
    for header, arrays in records:  # every step keeps what the policy proposed and what ran, and who ran it
        assert {"intervened", "device", "takeover", "policy_version"} <= set(header)
        assert arrays["policy_action"].shape == arrays["action"].shape == (4,)
    intervened = [h for h, _ in records if h["intervened"]]
    assert 0 < len(intervened) < STEPS and {h["device"] for h in intervened} == {"scripted-expert"}
    assert {h["device"] for h, _ in records if not h["intervened"]} == {""}
    takeovers = sum(h["takeover"] for h, _ in records)
    assert takeovers >= 2 and stats["interventions"]["takeovers"] == takeovers
    # on the policy's steps the executed action is the policy's; on the human's, the expert's
    for header, arrays in records:
        same = np.array_equal(arrays["action"], arrays["policy_action"])
        assert same if not header["intervened"] else not same
    episodes = read_jsonl(run.logs / "interventions.jsonl")
    assert sum(e["intervened_steps"] for e in episodes) <= len(intervened)  # the last episode may be open
    return run, config, stats, records


def rebuilt_learner(run: RunDir, config) -> Learner:
    learner = Learner(run, config)
    learner.writer.close()
    learner.store.close()
    return learner


def test_hil_serl_puts_intervention_steps_in_online_and_demo_stores(tmp_path):
    run, config, stats, records = run_mode(tmp_path, "hil-serl")
    intervened = [(h, a) for h, a in records if h["intervened"]]
    assert stats["interventions"]["demo_added"] == len(intervened)  # routed live, as they arrived
    learner = rebuilt_learner(run, config)
    assert len(learner.online) == STEPS and len(learner.demos) == len(intervened)
    demos = learner.demos.gather(np.arange(len(learner.demos)))
    np.testing.assert_array_equal(demos["action"], np.stack([a["action"] for _, a in intervened]))
    np.testing.assert_array_equal(demos["next_obs"]["state"], np.stack([a["next_obs/state"] for _, a in intervened]))
    online = learner.online.gather(np.arange(STEPS))
    np.testing.assert_array_equal(online["reward"], [h["reward"] for h, _ in records])  # task reward kept


def test_rlif_rewards_only_the_takeover_and_ignores_the_task_reward(tmp_path):
    run, config, stats, records = run_mode(tmp_path, "rlif", scripted=RESCUES, episode_steps=40)
    takeovers = [(h, a) for h, a in records if h["takeover"]]
    assert any(h["reward"] > 0 for h, _ in records)  # the task paid out ... (the expert lifts the cube)
    learner = rebuilt_learner(run, config)
    assert len(learner.online) == STEPS + len(takeovers) and len(learner.demos) == 0
    online = learner.online.gather(np.arange(len(learner.online)))
    penalized = online["reward"] == config.intervention.rlif_penalty
    assert penalized.sum() == len(takeovers) and np.all(online["reward"][~penalized] == 0.0)  # ... and was ignored
    # the penalty goes to the action the human overrode, ending there (its own next state never happened)
    np.testing.assert_array_equal(online["action"][penalized], np.stack([a["policy_action"] for _, a in takeovers]))
    assert np.all(online["terminated"][penalized] == 1.0)


def test_hg_dagger_writes_intervention_segments_as_bc_episodes(tmp_path):
    run, config, stats, records = run_mode(tmp_path, "hg-dagger")
    assert stats["learner_updates"] == 0  # no RL: the labels are for `robot-rl train-bc RUN --source bc`
    files = episode_paths(run.root / "bc")
    intervened = [a for h, a in records if h["intervened"]]
    episodes = [read_episode(p) for p in files]
    assert len(files) == stats["interventions"]["bc_episodes"] >= 3
    assert sum(len(e["action"]) for e in episodes) == len(intervened)
    np.testing.assert_array_equal(np.concatenate([e["action"] for e in episodes]),
                                  np.stack([a["action"] for a in intervened]))
    for episode in episodes:  # the demos format: T+1 observations, the first one the takeover state
        assert episode["obs/state"].shape == (len(episode["action"]) + 1, 13)
    learner = rebuilt_learner(run, config)
    assert len(learner.online) == 0 and len(learner.demos) == 0


class FallsSilentDevice(InterventionDevice):
    """A teleop device whose reports stop mid-intervention: the newest reading keeps its old stamp."""

    name = "falls-silent"

    def __init__(self, engage_from: int, silent_from: int, stale_after_s: float):
        self.stale_after_s = stale_after_s
        self.engage_from, self.silent_from, self.reads = engage_from, silent_from, 0
        self.last: TeleopReading | None = None

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self) -> TeleopReading:
        self.reads += 1
        if self.reads >= self.silent_from and self.last is not None:
            if self.reads == self.silent_from:
                time.sleep(self.stale_after_s)  # the first silent read is already past the stale timeout
            return self.last  # unplugged: the last report, stamped when it arrived
        engaged = self.reads >= self.engage_from
        twist = np.array([0.0, 0.0, 0.05 if engaged else 0.0, 0.0, 0.0, 0.0])
        self.last = TeleopReading(now_ns(), twist, 1.0 if engaged else 0.0, engaged, (), self.name)
        return self.last


def test_device_silent_mid_intervention_holds_the_safe_action_not_the_policy(tmp_path):
    run, config = session(tmp_path, "hil-serl", max_env_steps=30)
    config = config.model_copy(update={"intervention": config.intervention.model_copy(
        update={"device": "keyboard", "stale_timeout_ms": 50.0, "hold_s": 0.0})})
    learner = subprocess.Popen([sys.executable, "-m", "robot_rl.learner", str(run.root)], env=child_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    actor = Actor(run, config, device=FallsSilentDevice(engage_from=5, silent_from=10, stale_after_s=0.06))
    context = zmq.Context()
    try:
        actor.connect(context)
        actor.run_episodes()
    finally:
        actor.link.close()
        context.term()
        learner.wait(timeout=60)
    records = stored_records(run, load_session(run.config))[:20]  # the first episode
    kinds = [("safe" if h.get("safe_hold") else "device" if h["intervened"] else "policy") for h, _ in records]
    assert kinds[:4] == ["policy"] * 4 and kinds[4:9] == ["device"] * 5
    assert kinds[9:] == ["safe"] * 11  # silent to the episode's end: never back to the policy
    for header, arrays in records[9:]:
        # hold still, gripper as it was (closed by the device): not what the policy proposed
        np.testing.assert_array_equal(arrays["action"], [0.0, 0.0, 0.0, 1.0])
        assert not np.array_equal(arrays["action"], arrays["policy_action"])
        assert header["device"] == "falls-silent"


def test_records_from_before_interventions_load_with_defaults(tmp_path):
    run, config = session(tmp_path, "hil-serl")
    spec = ObsSpec.from_dict(json.loads(run.spec.read_text())["obs_spec"])
    store = ReplayStore(run.replay / "online", spec, 4)
    rng = np.random.default_rng(0)
    for seq in range(3):  # as a session without interventions stored them: no intervention fields, no policy_action
        header = {"actor_id": "a", "actor_session": "old", "seq": seq, "policy_version": 0, "reward": 0.5,
                  "terminated": False, "truncated": seq == 2, "episode_start": seq == 0}
        state = {"state": rng.normal(size=13).astype(np.float32)}
        store.append(header, state, rng.uniform(-1, 1, 4).astype(np.float32), state)
    store.close()
    learner = rebuilt_learner(run, config)
    assert len(learner.online) == 3 and len(learner.demos) == 0
    assert learner.intervention_counts["intervened_steps"] == 0
    assert np.all(learner.online.gather(np.arange(3))["reward"] == 0.5)


def test_shipped_intervention_sessions_load():
    from pathlib import Path

    launch = Path(__file__).resolve().parents[2] / "launch"
    modes = {name: load_session(launch / name).intervention.mode
             for name in ("sim_pick_cube_hil.yaml", "sim_pick_cube_rlif.yaml")}
    assert modes == {"sim_pick_cube_hil.yaml": "hil-serl", "sim_pick_cube_rlif.yaml": "rlif"}
    assert load_session(launch / "sim_pick_cube.yaml").intervention is None  # off unless a session asks for it
