"""TF Serving's warmup request records (`PredictionLog`), described at run time.

The `tensorflow-serving-api` package requires the `tensorflow` distribution and cannot be
installed beside `tensorflow-cpu`, so the few messages a warmup file needs are declared here
with the field numbers of TF Serving's `prediction_log.proto`, `predict.proto`,
`classification.proto`, `regression.proto`, `model.proto` and `input.proto` (package
`tensorflow.serving`). A `tensorflow.Example` or `tensorflow.TensorProto` field is declared
as bytes holding the serialized message: the same bytes on the wire, so TF Serving parses a
file written with these classes as one written with its own. Fields not needed (responses,
log metadata, streaming options) are left out.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "tensorflow.serving"
_T = descriptor_pb2.FieldDescriptorProto.Type
_OPTIONAL = descriptor_pb2.FieldDescriptorProto.Label.LABEL_OPTIONAL
_REPEATED = descriptor_pb2.FieldDescriptorProto.Label.LABEL_REPEATED

# message -> (field, number, type, repeated, message type); a bytes field holding a
# serialized tensorflow.Example or tensorflow.TensorProto says so in its comment.
_MESSAGES: dict[str, list[tuple[str, int, int, bool, str | None]]] = {
    "ModelSpec": [
        ("name", 1, _T.TYPE_STRING, False, None),
        ("signature_name", 3, _T.TYPE_STRING, False, None),
    ],
    # tensorflow.Example, serialized
    "ExampleList": [("examples", 1, _T.TYPE_BYTES, True, None)],
    "Input": [("example_list", 1, _T.TYPE_MESSAGE, False, "ExampleList")],
    "ClassificationRequest": [
        ("model_spec", 1, _T.TYPE_MESSAGE, False, "ModelSpec"),
        ("input", 2, _T.TYPE_MESSAGE, False, "Input"),
    ],
    "RegressionRequest": [
        ("model_spec", 1, _T.TYPE_MESSAGE, False, "ModelSpec"),
        ("input", 2, _T.TYPE_MESSAGE, False, "Input"),
    ],
    "PredictRequest": [
        ("model_spec", 1, _T.TYPE_MESSAGE, False, "ModelSpec"),
        ("inputs", 2, _T.TYPE_MESSAGE, True, "PredictRequest.InputsEntry"),
    ],
    # value: tensorflow.TensorProto, serialized
    "PredictRequest.InputsEntry": [
        ("key", 1, _T.TYPE_STRING, False, None),
        ("value", 2, _T.TYPE_BYTES, False, None),
    ],
    "ClassifyLog": [("request", 1, _T.TYPE_MESSAGE, False, "ClassificationRequest")],
    "RegressLog": [("request", 1, _T.TYPE_MESSAGE, False, "RegressionRequest")],
    "PredictLog": [("request", 1, _T.TYPE_MESSAGE, False, "PredictRequest")],
    "PredictionLog": [
        ("classify_log", 2, _T.TYPE_MESSAGE, False, "ClassifyLog"),
        ("regress_log", 3, _T.TYPE_MESSAGE, False, "RegressLog"),
        ("predict_log", 6, _T.TYPE_MESSAGE, False, "PredictLog"),
    ],
}
_ONEOF = {"PredictionLog": "log_type"}


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name="airflow_tf_export/savedmodel/warmup.proto", package=_PACKAGE, syntax="proto3"
    )
    containers: dict[str, descriptor_pb2.DescriptorProto] = {}
    for name, fields in _MESSAGES.items():
        outer, _, inner = name.rpartition(".")
        if outer:
            message = containers[outer].nested_type.add(name=inner)
            message.options.map_entry = True
        else:
            message = proto.message_type.add(name=name)
        containers[name] = message
        oneof = _ONEOF.get(name)
        if oneof is not None:
            message.oneof_decl.add(name=oneof)
        for field_name, number, kind, repeated, type_name in fields:
            field = message.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=_REPEATED if repeated else _OPTIONAL,
            )
            if type_name is not None:
                field.type_name = f".{_PACKAGE}.{type_name}"
            if oneof is not None:
                field.oneof_index = 0
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file())


def _message(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


PredictionLog: Any = _message("PredictionLog")
