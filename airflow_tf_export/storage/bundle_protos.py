"""The tensor bundle's index records, described at run time so parsing needs no TensorFlow.

Field numbers and types follow TensorFlow's `tensor_bundle.proto` (`BundleHeaderProto`,
`BundleEntryProto`) and `tensor_shape.proto`. Enums are declared as int32 (the same varint on
the wire); fields not needed here (the header's version, a slice's extents) are left out and
kept as unknown fields (see core.proto_schema).
"""

from __future__ import annotations

from typing import Any

from airflow_tf_export.core.proto_schema import Field, message_classes
from airflow_tf_export.core.proto_schema import FieldType as _T

# BundleHeaderProto.Endianness
LITTLE_ENDIAN = 0
BIG_ENDIAN = 1

_MESSAGES: dict[str, list[Field]] = {
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

_CLASSES = message_classes(
    "airflow_tf_export/storage/bundle.proto", "airflow_tf_export.storage.bundle", _MESSAGES
)
BundleHeader: Any = _CLASSES["BundleHeader"]
BundleEntry: Any = _CLASSES["BundleEntry"]
