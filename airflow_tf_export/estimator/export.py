"""`estimator.export`: export outputs and serving receivers, as tf.estimator.export had them.

PredictOutput(outputs)                        ClassificationOutput(scores, classes)
RegressionOutput(value)                       ExportOutput (their base class)
ServingInputReceiver(features, receiver_tensors, receiver_tensors_alternatives=None)
SupervisedInputReceiver(features, labels, receiver_tensors)
build_parsing_serving_input_receiver_fn(feature_spec, default_batch_size=None)
build_raw_serving_input_receiver_fn(features, default_batch_size=None)
"""

from __future__ import annotations

from airflow_tf_export.estimator.export_outputs import (
    ClassificationOutput,
    ExportOutput,
    PredictOutput,
    RegressionOutput,
)
from airflow_tf_export.estimator.receivers import (
    ServingInputReceiver,
    SupervisedInputReceiver,
    build_parsing_serving_input_receiver_fn,
    build_raw_serving_input_receiver_fn,
)

__all__ = [
    "ClassificationOutput",
    "ExportOutput",
    "PredictOutput",
    "RegressionOutput",
    "ServingInputReceiver",
    "SupervisedInputReceiver",
    "build_parsing_serving_input_receiver_fn",
    "build_raw_serving_input_receiver_fn",
]
