"""Message encoding: a msgpack header frame followed by one raw buffer frame per array.

The header declares each array's name, dtype and shape; decoding checks the schema version,
the dtype against a whitelist and every buffer's size against its declaration before any
array is built. Nothing here can execute code from the wire.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

SCHEMA_VERSION = 2  # 2: transition ids, obs only at episode starts, hello/status/ack/nack link messages
ALLOWED_DTYPES = {"float32", "float64", "int64", "int32", "uint8", "bool"}
MAX_ARRAY_BYTES = 256 * 1024 * 1024  # a larger declared size is refused before allocation
MAX_HEADER_BYTES = 1024 * 1024


class WireError(ValueError):
    """A message that does not follow the schema; ``reason`` is a short counter key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def encode(kind: str, header: dict[str, Any] | None = None, arrays: dict[str, np.ndarray] | None = None,
           blobs: dict[str, bytes] | None = None) -> list[bytes]:
    arrays = arrays or {}
    blobs = blobs or {}
    layout, frames = [], []
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        if array.dtype.name not in ALLOWED_DTYPES:
            raise WireError("bad_dtype", f"array '{name}' has dtype {array.dtype}")
        layout.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape)})
        frames.append(array.tobytes())
    for name, blob in blobs.items():
        layout.append({"name": name, "dtype": "bytes", "shape": [len(blob)]})
        frames.append(bytes(blob))
    head = {"v": SCHEMA_VERSION, "kind": kind, "h": header or {}, "arrays": layout}
    return [msgpack.packb(head, use_bin_type=True), *frames]


def decode(frames: list[bytes]) -> tuple[str, dict[str, Any], dict[str, np.ndarray], dict[str, bytes]]:
    if not frames:
        raise WireError("empty")
    if len(frames[0]) > MAX_HEADER_BYTES:
        raise WireError("header_too_large", f"{len(frames[0])} bytes")
    try:
        head = msgpack.unpackb(frames[0], raw=False, strict_map_key=True, max_bin_len=0, max_ext_len=0)
    except Exception as err:  # msgpack raises several types for garbage
        raise WireError("bad_header", str(err)[:100]) from None
    if not isinstance(head, dict) or not isinstance(head.get("arrays"), list) or not isinstance(head.get("h"), dict):
        raise WireError("bad_header", "header is not a schema map")
    if head.get("v") != SCHEMA_VERSION:
        raise WireError("bad_version", f"schema {head.get('v')!r}, expected {SCHEMA_VERSION}")
    kind = head.get("kind")
    if not isinstance(kind, str):
        raise WireError("bad_header", "kind missing")
    layout = head["arrays"]
    if len(layout) != len(frames) - 1:
        raise WireError("frame_count", f"declared {len(layout)} buffers, got {len(frames) - 1}")
    arrays, blobs = {}, {}
    for spec, frame in zip(layout, frames[1:]):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not isinstance(spec.get("shape"), list):
            raise WireError("bad_header", "array spec malformed")
        shape = spec["shape"]
        if not all(isinstance(d, int) and 0 <= d < 2**31 for d in shape):
            raise WireError("bad_shape", str(shape)[:80])
        dtype = spec.get("dtype")
        if dtype == "bytes":
            if shape != [len(frame)]:
                raise WireError("size_mismatch", spec["name"])
            blobs[spec["name"]] = bytes(frame)
            continue
        if dtype not in ALLOWED_DTYPES:
            raise WireError("bad_dtype", str(dtype)[:40])
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if expected > MAX_ARRAY_BYTES:
            raise WireError("too_large", f"{spec['name']} declares {expected} bytes")
        if expected != len(frame):
            raise WireError("size_mismatch", f"{spec['name']}: declared {expected} bytes, got {len(frame)}")
        arrays[spec["name"]] = np.frombuffer(frame, dtype=dtype).reshape(shape)
    return kind, head["h"], arrays, blobs
