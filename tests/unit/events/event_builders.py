"""Event records for unit tests, built with tensorboard's own protos (no TensorFlow).

tensorboard's generated `Event` classes are an implementation independent of the runtime-built
descriptors under test, so a mismatch in field numbers or types shows up as a test failure.
Integration tests use files written by TensorFlow itself.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

from airflow_tf_export.events.tfrecord import masked_crc32c


def frame(payload: bytes) -> bytes:
    """One TFRecord: length, masked CRC of the length, payload, masked CRC of the payload."""
    length = struct.pack("<Q", len(payload))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + payload
        + struct.pack("<I", masked_crc32c(payload))
    )


def file_version_event(wall_time: float = 1.0) -> bytes:
    return event_pb2.Event(wall_time=wall_time, file_version="brain.Event:2").SerializeToString()


def simple_value_event(
    step: int,
    metrics: Mapping[str, float],
    *,
    wall_time: float = 1000.0,
) -> bytes:
    """The TF1 / Estimator form: one event, every metric a `simple_value`."""
    summary = summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag=t, simple_value=v) for t, v in metrics.items()]
    )
    return event_pb2.Event(step=step, wall_time=wall_time, summary=summary).SerializeToString()


def tensor_event(
    step: int,
    tag: str,
    tensor: tensor_pb2.TensorProto,
    *,
    plugin: str = "scalars",
    wall_time: float = 1000.0,
) -> bytes:
    """One value holding a tensor, with the given plugin name ("" for none)."""
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
    if plugin:
        value.metadata.plugin_data.plugin_name = plugin
    summary = summary_pb2.Summary(value=[value])
    return event_pb2.Event(step=step, wall_time=wall_time, summary=summary).SerializeToString()


def float_tensor(value: float, *, as_content: bool = True) -> tensor_pb2.TensorProto:
    """A rank-0 float32 tensor, encoded in `tensor_content` (as TF2 writes it) or `float_val`."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    if as_content:
        tensor.tensor_content = struct.pack("<f", value)
    else:
        tensor.float_val.append(value)
    return tensor


def string_tensor(text: str) -> tensor_pb2.TensorProto:
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[text.encode()])


def checkpoint_event(step: int, path: str, *, wall_time: float = 1000.5) -> bytes:
    """Estimator's `checkpoint_path` summary: a string tensor without plugin metadata."""
    return tensor_event(
        step, "checkpoint_path", string_tensor(path), plugin="", wall_time=wall_time
    )


def write_events(path: Path, events: list[bytes]) -> int:
    """Write an event file (with the file_version header record); return its size."""
    data = frame(file_version_event()) + b"".join(frame(e) for e in events)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return len(data)


def append_events(path: Path, events: list[bytes]) -> int:
    """Append records to an event file; return the number of bytes appended."""
    data = b"".join(frame(e) for e in events)
    with path.open("ab") as handle:
        handle.write(data)
    return len(data)
