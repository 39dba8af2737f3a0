"""The tensor bundle's index records, described at run time so parsing needs no TensorFlow.

Field numbers and types follow TensorFlow's `tensor_bundle.proto` (`BundleHeaderProto`,
`BundleEntryProto`) and `tensor_shape.proto`. Enums are declared as int32 (the same varint on
the wire); fields not needed here (the header's version, a slice's extents) are left out and
kept as unknown fields. The classes come from protobuf's message factory (upb).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "airflow_tf_export.storage.bundle"
_T = descriptor_pb2.FieldDescriptorProto.Type
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.Label.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.Label.LABEL_REPEATED

# BundleHeaderProto.Endianness
LITTLE_ENDIAN = 0
BIG_ENDIAN = 1

_MESSAGES: dict[str, list[tuple[str, int, int, bool, str | None]]] = {
    "TensorShape": [
        ("dim", 2, _T.TYPE_MESSAGE, True, "TensorShapeDim"),
        ("unknown_rank", 3, _T.TYPE_BOOL, False, None),
    ],
    "TensorShapeDim": [
        ("size", 1, _T.TYPE_INT64, False, None),
        ("name", 2, _T.TYPE_STRING, False, None),
    ],
    "TensorSlice": [],
    "BundleHeader": [
        ("num_shards", 1, _T.TYPE_INT32, False, None),
        ("endianness", 2, _T.TYPE_INT32, False, None),
    ],
    "BundleEntry": [
        ("dtype", 1, _T.TYPE_INT32, False, None),
        ("shape", 2, _T.TYPE_MESSAGE, False, "TensorShape"),
        ("shard_id", 3, _T.TYPE_INT32, False, None),
        ("offset", 4, _T.TYPE_INT64, False, None),
        ("size", 5, _T.TYPE_INT64, False, None),
        ("crc32c", 6, _T.TYPE_FIXED32, False, None),
        ("slices", 7, _T.TYPE_MESSAGE, True, "TensorSlice"),
    ],
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="airflow_tf_export/storage/bundle.proto", package=_PACKAGE, syntax="proto3"
    )
    for name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=name)
        for field_name, number, kind, repeated, type_name in fields:
            field = message.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=_REPEATED if repeated else _OPTIONAL,
            )
            if type_name is not None:
                field.type_name = f".{_PACKAGE}.{type_name}"
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())
BundleHeader: Any = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(f"{_PACKAGE}.BundleHeader")
)
BundleEntry: Any = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(f"{_PACKAGE}.BundleEntry")
)
