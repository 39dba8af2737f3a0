"""The TensorBoard `Event` message, described at run time so parsing needs neither TF nor TB.

Only the fields the eval reader uses are declared; everything else in an event (graph defs,
images, histograms, session logs) is kept as unknown fields and ignored. Field numbers and
types follow tensorboard's `compat/proto` messages (`Event`, `Summary`, `SummaryMetadata`,
`TensorProto`, `TensorShapeProto`), so a file written by TensorFlow parses field for field.
The classes come from protobuf's message factory (core.proto_schema) and therefore parse in
its C (upb) code.
"""

from __future__ import annotations

from typing import Any

from airflow_tf_export.core.proto_schema import Field, message_classes
from airflow_tf_export.core.proto_schema import FieldType as _T

# TensorFlow `DataType` enum values (tensorflow/core/framework/types.proto).
DT_FLOAT = 1
DT_DOUBLE = 2
DT_INT32 = 3
DT_UINT8 = 4
DT_INT16 = 5
DT_INT8 = 6
DT_STRING = 7
DT_INT64 = 9


_MESSAGES: dict[str, list[Field]] = {
    "TensorShape": [("dim", 2, _T.TYPE_MESSAGE, True, "TensorShapeDim")],
    "TensorShapeDim": [
        ("size", 1, _T.TYPE_INT64, False, None),
        ("name", 2, _T.TYPE_STRING, False, None),
    ],
    "Tensor": [
        ("dtype", 1, _T.TYPE_INT32, False, None),
        ("tensor_shape", 2, _T.TYPE_MESSAGE, False, "TensorShape"),
        ("tensor_content", 4, _T.TYPE_BYTES, False, None),
        ("float_val", 5, _T.TYPE_FLOAT, True, None),
        ("double_val", 6, _T.TYPE_DOUBLE, True, None),
        ("int_val", 7, _T.TYPE_INT32, True, None),
        ("string_val", 8, _T.TYPE_BYTES, True, None),
        ("int64_val", 10, _T.TYPE_INT64, True, None),
    ],
    "PluginData": [
        ("plugin_name", 1, _T.TYPE_STRING, False, None),
        ("content", 2, _T.TYPE_BYTES, False, None),
    ],
    "SummaryMetadata": [("plugin_data", 1, _T.TYPE_MESSAGE, False, "PluginData")],
    "SummaryValue": [
        ("tag", 1, _T.TYPE_STRING, False, None),
        ("simple_value", 2, _T.TYPE_FLOAT, False, None),
        ("tensor", 8, _T.TYPE_MESSAGE, False, "Tensor"),
        ("metadata", 9, _T.TYPE_MESSAGE, False, "SummaryMetadata"),
    ],
    "Summary": [("value", 1, _T.TYPE_MESSAGE, True, "SummaryValue")],
    # The cheapest view of `Event`: its step and time, and whether it has a summary.
    "OpaqueSummary": [],
    "EventStamp": [
        ("wall_time", 1, _T.TYPE_DOUBLE, False, None),
        ("step", 2, _T.TYPE_INT64, False, None),
        ("summary", 5, _T.TYPE_MESSAGE, False, "OpaqueSummary"),
    ],
    "Event": [
        ("wall_time", 1, _T.TYPE_DOUBLE, False, None),
        ("step", 2, _T.TYPE_INT64, False, None),
        ("file_version", 3, _T.TYPE_STRING, False, None),
        ("summary", 5, _T.TYPE_MESSAGE, False, "Summary"),
    ],
}
_CLASSES = message_classes(
    "airflow_tf_export/events/event.proto",
    "airflow_tf_export.events",
    _MESSAGES,
    {
        "SummaryValue": ("value", {"simple_value", "tensor"}),
        "Event": ("what", {"file_version", "summary"}),
    },
)

Event: Any = _CLASSES["Event"]
"""The `Event` message class: `Event.FromString(record_bytes)`."""

EventStamp: Any = _CLASSES["EventStamp"]
"""A view of `Event` with only `wall_time`, `step` and whether `summary` is set (not parsed)."""
