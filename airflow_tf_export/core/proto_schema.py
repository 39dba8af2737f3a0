"""Protobuf message classes described at run time from tables of fields.

For the wire formats whose generated modules cannot be dependencies here (TensorBoard's
`Event`, TensorFlow's tensor bundle index, TF Serving's warmup log): a module lists the
fields it needs with the upstream field numbers and types, and gets classes that read and
write the same bytes. They come from protobuf's message factory, so they parse in its C (upb)
code. Fields left out of a table are kept as unknown fields.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FieldType = descriptor_pb2.FieldDescriptorProto.Type
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.Label.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.Label.LABEL_REPEATED

Field = tuple[str, int, int, bool, str | None]
"""(name, number, type, repeated, message type name or None) of one field."""


def message_classes(
    file_name: str,
    package: str,
    messages: Mapping[str, Sequence[Field]],
    oneofs: Mapping[str, tuple[str, Collection[str]]] | None = None,
) -> dict[str, Any]:
    """The class of every message in `messages`, by name.

    A dotted name (`Outer.InputsEntry`) declares the entry message of a map field of `Outer`,
    listed after it. `oneofs` maps a message to its one oneof: (name, the fields in it).
    """
    proto = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    declared: dict[str, descriptor_pb2.DescriptorProto] = {}
    for name, fields in messages.items():
        outer, _, inner = name.rpartition(".")
        if outer:
            message = declared[outer].nested_type.add(name=inner)
            message.options.map_entry = True
        else:
            message = proto.message_type.add(name=name)
        declared[name] = message
        oneof_name, in_oneof = (oneofs or {}).get(name, ("", ()))
        if oneof_name:
            message.oneof_decl.add(name=oneof_name)
        for field_name, number, kind, repeated, type_name in fields:
            field = message.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=_REPEATED if repeated else _OPTIONAL,
            )
            if type_name is not None:
                field.type_name = f".{package}.{type_name}"
            if field_name in in_oneof:
                field.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name in messages
    }
