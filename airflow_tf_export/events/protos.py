"""The TensorBoard `Event` message, described at run time so parsing needs neither TF nor TB.

Only the fields the eval reader uses are declared; everything else in an event (graph defs,
images, histograms, session logs) is kept as unknown fields and ignored. Field numbers and
types follow tensorboard's `compat/proto` messages (`Event`, `Summary`, `SummaryMetadata`,
`TensorProto`, `TensorShapeProto`), so a file written by TensorFlow parses field for field.
The classes come from protobuf's message factory and therefore parse in its C (upb) code.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "airflow_tf_export.events"
_FieldType = descriptor_pb2.FieldDescriptorProto.Type
_Label = descriptor_pb2.FieldDescriptorProto.Label

# TensorFlow `DataType` enum values (tensorflow/core/framework/types.proto).
DT_FLOAT = 1
DT_DOUBLE = 2
DT_INT32 = 3
DT_UINT8 = 4
DT_INT16 = 5
DT_INT8 = 6
DT_STRING = 7
DT_INT64 = 9


def _message(
    name: str,
    fields: list[tuple[str, int, int, bool, str | None]],
    oneof: tuple[str, set[str]] | None = None,
) -> descriptor_pb2.DescriptorProto:
    """A message with (name, number, type, repeated, message type name) fields."""
    message = descriptor_pb2.DescriptorProto(name=name)
    if oneof is not None:
        message.oneof_decl.add(name=oneof[0])
    for field_name, number, kind, repeated, type_name in fields:
        field = message.field.add(
            name=field_name,
            number=number,
            type=kind,
            label=_Label.LABEL_REPEATED if repeated else _Label.LABEL_OPTIONAL,
        )
        if type_name is not None:
            field.type_name = f".{_PACKAGE}.{type_name}"
        if oneof is not None and field_name in oneof[1]:
            field.oneof_index = 0
    return message


def _file() -> descriptor_pb2.FileDescriptorProto:
    t = _FieldType
    proto = descriptor_pb2.FileDescriptorProto(
        name="airflow_tf_export/events/event.proto", package=_PACKAGE, syntax="proto3"
    )
    proto.message_type.extend(
        [
            _message(
                "TensorShape",
                [("dim", 2, t.TYPE_MESSAGE, True, "TensorShapeDim")],
            ),
            _message(
                "TensorShapeDim",
                [("size", 1, t.TYPE_INT64, False, None), ("name", 2, t.TYPE_STRING, False, None)],
            ),
            _message(
                "Tensor",
                [
                    ("dtype", 1, t.TYPE_INT32, False, None),
                    ("tensor_shape", 2, t.TYPE_MESSAGE, False, "TensorShape"),
                    ("tensor_content", 4, t.TYPE_BYTES, False, None),
                    ("float_val", 5, t.TYPE_FLOAT, True, None),
                    ("double_val", 6, t.TYPE_DOUBLE, True, None),
                    ("int_val", 7, t.TYPE_INT32, True, None),
                    ("string_val", 8, t.TYPE_BYTES, True, None),
                    ("int64_val", 10, t.TYPE_INT64, True, None),
                ],
            ),
            _message(
                "PluginData",
                [
                    ("plugin_name", 1, t.TYPE_STRING, False, None),
                    ("content", 2, t.TYPE_BYTES, False, None),
                ],
            ),
            _message(
                "SummaryMetadata",
                [("plugin_data", 1, t.TYPE_MESSAGE, False, "PluginData")],
            ),
            _message(
                "SummaryValue",
                [
                    ("tag", 1, t.TYPE_STRING, False, None),
                    ("simple_value", 2, t.TYPE_FLOAT, False, None),
                    ("tensor", 8, t.TYPE_MESSAGE, False, "Tensor"),
                    ("metadata", 9, t.TYPE_MESSAGE, False, "SummaryMetadata"),
                ],
                oneof=("value", {"simple_value", "tensor"}),
            ),
            _message("Summary", [("value", 1, t.TYPE_MESSAGE, True, "SummaryValue")]),
            # The cheapest view of `Event`: its step and time, and whether it has a summary.
            _message("OpaqueSummary", []),
            _message(
                "EventStamp",
                [
                    ("wall_time", 1, t.TYPE_DOUBLE, False, None),
                    ("step", 2, t.TYPE_INT64, False, None),
                    ("summary", 5, t.TYPE_MESSAGE, False, "OpaqueSummary"),
                ],
            ),
            _message(
                "Event",
                [
                    ("wall_time", 1, t.TYPE_DOUBLE, False, None),
                    ("step", 2, t.TYPE_INT64, False, None),
                    ("file_version", 3, t.TYPE_STRING, False, None),
                    ("summary", 5, t.TYPE_MESSAGE, False, "Summary"),
                ],
                oneof=("what", {"file_version", "summary"}),
            ),
        ]
    )
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())


def _message_class(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


Event: Any = _message_class("Event")
"""The `Event` message class: `Event.FromString(record_bytes)`."""

EventStamp: Any = _message_class("EventStamp")
"""A view of `Event` with only `wall_time`, `step` and whether `summary` is set (not parsed)."""
