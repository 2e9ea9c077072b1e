"""Wire format: msgpack header + raw buffers round trip; malformed input is refused with a reason."""

import msgpack
import numpy as np
import pytest

from robot_rl.transport.wire import SCHEMA_VERSION, WireError, decode, encode


def test_round_trip_arrays_and_blobs():
    arrays = {"obs/state": np.arange(13, dtype=np.float32), "obs/front": np.ones((128, 128, 3), np.uint8)}
    frames = encode("transition", {"seq": 7, "reward": 1.5}, arrays, blobs={"weights": b"\x00\x01"})
    kind, header, decoded, blobs = decode(frames)
    assert kind == "transition" and header == {"seq": 7, "reward": 1.5}
    for key, value in arrays.items():
        np.testing.assert_array_equal(decoded[key], value)
        assert decoded[key].dtype == value.dtype
    assert blobs == {"weights": b"\x00\x01"}


def _head(**overrides):
    head = {"v": SCHEMA_VERSION, "kind": "transition", "h": {}, "arrays": [{"name": "a", "dtype": "float32", "shape": [4]}]}
    head.update(overrides)
    return msgpack.packb(head)


@pytest.mark.parametrize(
    "frames,reason",
    [
        ([], "empty"),
        ([b"\xc1\xff garbage"], "bad_header"),
        ([msgpack.packb([1, 2, 3])], "bad_header"),
        ([_head(v=99), b"\x00" * 16], "bad_version"),
        ([_head()], "frame_count"),
        ([_head(), b"\x00" * 15], "size_mismatch"),
        ([_head(arrays=[{"name": "a", "dtype": "object", "shape": [1]}]), b"\x00" * 8], "bad_dtype"),
        ([_head(arrays=[{"name": "a", "dtype": "float64", "shape": [2**30, 2**30]}]), b""], "too_large"),
        ([_head(arrays=[{"name": "a", "dtype": "float32", "shape": [-1]}]), b""], "bad_shape"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(frames, reason):
    with pytest.raises(WireError) as err:
        decode(frames)
    assert err.value.reason == reason


def test_object_arrays_cannot_be_encoded():
    with pytest.raises(WireError):
        encode("x", arrays={"bad": np.array([object()], dtype=object)})
