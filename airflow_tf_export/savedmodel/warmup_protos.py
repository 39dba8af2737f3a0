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

from airflow_tf_export.core.proto_schema import Field, message_classes
from airflow_tf_export.core.proto_schema import FieldType as _T

# message -> (field, number, type, repeated, message type); a bytes field holding a
# serialized tensorflow.Example or tensorflow.TensorProto says so in its comment.
_MESSAGES: dict[str, list[Field]] = {
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

PredictionLog: Any = message_classes(
    "airflow_tf_export/savedmodel/warmup.proto",
    "tensorflow.serving",
    _MESSAGES,
    {"PredictionLog": ("log_type", {"classify_log", "regress_log", "predict_log"})},
)["PredictionLog"]
