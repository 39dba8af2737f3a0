"""Values of one event: scalars written as TF1 `simple_value` or TF2 tensors, and strings.

TF1 (`tf.compat.v1.summary.FileWriter`, Estimator evaluation) writes `simple_value`; TF2
`tf.summary.scalar` writes a rank-0 float tensor with the "scalars" plugin; `tf.summary.write`
and Estimator's numpy metrics write raw tensors of any dtype; Estimator's `checkpoint_path`
and `tf.summary.text` write a string tensor. A tensor counts only when it holds exactly one
element and its plugin is none, "scalars" (numbers) or "text" (strings), so histograms,
images and other plugins' tensors never become metrics.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from typing import Any, NamedTuple

from airflow_tf_export.events import protos

_NUMERIC_PLUGINS = frozenset({"", "scalars"})
_STRING_PLUGINS = frozenset({"", "text"})
# dtype -> (repeated field holding values, struct format of one tensor_content element)
NUMERIC_DTYPES: dict[int, tuple[str, str]] = {
    protos.DT_FLOAT: ("float_val", "<f"),
    protos.DT_DOUBLE: ("double_val", "<d"),
    protos.DT_INT32: ("int_val", "<i"),
    protos.DT_INT16: ("int_val", "<h"),
    protos.DT_INT8: ("int_val", "<b"),
    protos.DT_UINT8: ("int_val", "<B"),
    protos.DT_INT64: ("int64_val", "<q"),
}


class EventValues(NamedTuple):
    """The usable values of one summary event: scalars by tag and strings by tag."""

    scalars: Mapping[str, float]
    strings: Mapping[str, str]


class DecodedEvent(NamedTuple):
    """A summary event's step, wall time and usable values."""

    step: int
    wall_time: float
    values: EventValues


class UndecodableEventError(ValueError):
    """A record passed its CRC check but is not a TensorBoard `Event`."""


def read_stamp(data: bytes) -> tuple[int, float] | None:
    """(step, wall_time) of a serialized `Event` that has a summary; None for other events.

    Only the envelope is parsed, so every event of a file can be stamped cheaply and its
    values decoded when (and if) they are needed.
    """
    stamp = _parse(protos.EventStamp, data)
    if not stamp.HasField("summary"):
        return None
    return stamp.step, stamp.wall_time


def decode_values(data: bytes) -> EventValues:
    """The scalars and strings of a serialized `Event` (both empty when it has none usable)."""
    return _values(_parse(protos.Event, data))


def decode_event(data: bytes) -> DecodedEvent | None:
    """Step, wall time and values of a serialized `Event`; None when it has no summary."""
    event = _parse(protos.Event, data)
    if not event.HasField("summary"):
        return None
    return DecodedEvent(event.step, event.wall_time, _values(event))


def _values(event: Any) -> EventValues:
    scalars: dict[str, float] = {}
    strings: dict[str, str] = {}
    for value in event.summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            scalars[value.tag] = value.simple_value
        elif kind == "tensor":
            _add_tensor(value, scalars, strings)
    return EventValues(scalars, strings)


def _parse(message_class: Any, data: bytes) -> Any:
    try:
        return message_class.FromString(data)
    except Exception as error:  # protobuf raises its own DecodeError type per implementation
        raise UndecodableEventError(f"not an Event protobuf: {error}") from None


def _add_tensor(value: Any, scalars: dict[str, float], strings: dict[str, str]) -> None:
    tensor = value.tensor
    if not _has_one_element(tensor):
        return
    plugin = value.metadata.plugin_data.plugin_name
    if tensor.dtype == protos.DT_STRING:
        if plugin in _STRING_PLUGINS and len(tensor.string_val) == 1:
            strings[value.tag] = tensor.string_val[0].decode("utf-8", errors="replace")
        return
    layout = NUMERIC_DTYPES.get(tensor.dtype)
    if layout is None or plugin not in _NUMERIC_PLUGINS:
        return
    number = _single_number(tensor, *layout)
    if number is not None:
        scalars[value.tag] = number


def _has_one_element(tensor: Any) -> bool:
    return math.prod(dim.size for dim in tensor.tensor_shape.dim) == 1


def _single_number(tensor: Any, field_name: str, element_format: str) -> float | None:
    """The element, from `tensor_content` or the typed repeated field (TF's two encodings)."""
    content = tensor.tensor_content
    if content:
        if len(content) != struct.calcsize(element_format):
            return None
        return float(struct.unpack(element_format, content)[0])
    values = getattr(tensor, field_name)
    # An empty value list is TensorFlow's encoding of an all-zero tensor.
    return float(values[0]) if values else 0.0
