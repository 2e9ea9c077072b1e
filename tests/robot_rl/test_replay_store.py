"""Durable replay store and actor spool: what was committed survives a kill, torn tails are dropped,
observations are stored once, and a bounded buffer reloads the newest transitions from disk."""

import json
import os

import numpy as np
import pytest

from robot_rl.replay import ReplayBuffer, ReplayStore, transition_digest
from robot_rl.spaces import ObsSpec
from robot_rl.transport.spool import SEGMENT_TRANSITIONS, SessionSpool, audit_spool, previous_sessions
from robot_rl.transport.wire import encode

SPEC = ObsSpec(2, {"cam": (4, 4, 3)})


def _obs(session_index, t):
    return {"state": np.array([session_index, t], np.float32), "cam": np.full((4, 4, 3), t % 256, np.uint8)}


def _episodes(sessions=("s0", "s1"), episodes=3, length=7):
    """Interleaved episodes of several actor sessions: (header, obs, action, next_obs) in arrival order."""
    out, seq = [], {s: 0 for s in sessions}
    for e in range(episodes):
        for t in range(length):
            for i, session in enumerate(sessions):
                header = {"actor_id": "a", "actor_session": session, "seq": seq[session], "policy_version": e,
                          "reward": float(t), "terminated": t == length - 1 and e % 2 == 0,
                          "truncated": t == length - 1 and e % 2 == 1, "episode_start": t == 0}
                out.append((header, _obs(i, 100 * e + t), np.full(1, t, np.float32), _obs(i, 100 * e + t + 1)))
                seq[session] += 1
    return out


def _digest(header, obs, action, next_obs):
    return transition_digest(header["actor_session"], header["seq"], obs, action, header["reward"],
                             header["terminated"], header["truncated"], next_obs)


def test_committed_transitions_reload_exactly_with_observations_stored_once(tmp_path):
    data = _episodes()
    store = ReplayStore(tmp_path, SPEC, 1, chunk_transitions=10)
    for item in data:
        store.append(*item)
    store.commit()
    del store  # no close: as after a kill

    reopened = ReplayStore(tmp_path, SPEC, 1, chunk_transitions=10)
    assert reopened.count == len(data) == 42
    assert [_digest(*t) for t in reopened.iter_transitions()] == [_digest(*t) for t in data]
    assert reopened.expected_seq("s0") == reopened.expected_seq("s1") == 21
    with_obs = sum("obs/state" in arrays for _, arrays in reopened.iter_records())
    assert with_obs == 6  # only episode starts carry their observation; the rest link to the previous next_obs
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [c["count"] for c in manifest["chunks"]] == [10, 10, 10, 10]  # sealed at chunk boundaries
    with pytest.raises(ValueError):
        reopened.append({**data[0][0], "seq": 5}, *data[0][1:])  # out of order for session s0
    np.testing.assert_array_equal(reopened.last_next_obs("s1")["state"], data[-1][3]["state"])
    assert reopened.last_next_obs("unknown") is None


def test_torn_tail_is_dropped_and_appending_continues(tmp_path):
    data = _episodes(sessions=("s0",), episodes=1)
    store = ReplayStore(tmp_path, SPEC, 1)
    for item in data[:5]:
        store.append(*item)
    store.commit()
    (open_chunk,) = tmp_path.glob("chunk_*.open")
    with open(open_chunk, "ab") as handle:  # half a record, as a kill during write leaves it
        handle.write(b"\x50\x00\x00\x00\x12\x34\x56\x78partial")
    store = ReplayStore(tmp_path, SPEC, 1)
    assert store.count == 5 and store.expected_seq("s0") == 5
    store.append(*data[5])
    store.commit()
    assert [h["seq"] for h, *_ in ReplayStore(tmp_path, SPEC, 1).iter_transitions()] == list(range(6))


def test_chunk_sealed_but_not_listed_is_adopted(tmp_path):
    data = _episodes(sessions=("s0",), episodes=2)
    store = ReplayStore(tmp_path, SPEC, 1, chunk_transitions=5)
    for item in data[:10]:
        store.append(*item)
        store.commit()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["chunks"].pop()  # the kill came between the rename and the manifest write
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    reopened = ReplayStore(tmp_path, SPEC, 1, chunk_transitions=5)
    assert reopened.count == 10 and reopened.expected_seq("s0") == 10


def test_bounded_buffer_reloads_newest_transitions_consistently(tmp_path):
    data = _episodes(episodes=6, length=9)
    store = ReplayStore(tmp_path, SPEC, 1, chunk_transitions=8)
    for item in data:
        store.append(*item)
    store.commit()
    buffer = ReplayBuffer(SPEC, 1, capacity=30, seed=0)
    links = ReplayStore(tmp_path, SPEC, 1, chunk_transitions=8).load_into(buffer)
    assert 28 <= buffer.total_added <= 40 and len(buffer) == 30
    assert links == {}  # every episode ended: no open session to link a next transition to
    batch = buffer.sample(500)
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 1], batch["obs"]["state"][:, 1] + 1)
    np.testing.assert_array_equal(batch["next_obs"]["state"][:, 0], batch["obs"]["state"][:, 0])
    assert batch["obs"]["state"][:, 1].min() >= 300  # only the newest episodes


def test_store_refuses_another_layout(tmp_path):
    ReplayStore(tmp_path, SPEC, 1)
    with pytest.raises(RuntimeError, match="new run directory"):
        ReplayStore(tmp_path, ObsSpec(5), 1)


def _frames(session, seq):
    return encode("transition", {"actor_session": session, "seq": seq}, {"action": np.full(1, seq, np.float32)})


def test_spool_trims_acknowledged_segments_and_recovers_after_a_kill(tmp_path):
    spool = SessionSpool(tmp_path, "old", keep_acked=True)
    total = 2 * SEGMENT_TRANSITIONS + 10
    for seq in range(total):
        spool.append(seq, _frames("old", seq))
    spool.acknowledge(SEGMENT_TRANSITIONS + 3)
    assert spool.backlog == total - SEGMENT_TRANSITIONS - 3
    assert len(list((tmp_path / "old").glob("*.acked"))) == 1
    last_segment = sorted((tmp_path / "old").glob("*.spool"))[-1]
    spool.close()
    with open(last_segment, "ab") as handle:
        handle.write(b"\xff" * 11)  # torn record
    (recovered,) = previous_sessions(tmp_path, keep_acked=True)
    assert recovered.first_seq == SEGMENT_TRANSITIONS and recovered.next_seq == total
    np.testing.assert_array_equal(np.frombuffer(recovered.read(total - 1)[1], np.float32), [total - 1])
    assert set(audit_spool(tmp_path)) == {("old", s) for s in range(total)}  # acknowledged ones kept for audit
    recovered.acknowledge(total)
    assert recovered.remove_if_empty() is False  # keep_acked keeps the folder

    plain = SessionSpool(tmp_path / "plain", "s")
    for seq in range(10):
        plain.append(seq, _frames("s", seq))
    plain.acknowledge(10, final=True)
    assert plain.remove_if_empty() and not os.path.exists(tmp_path / "plain" / "s")
