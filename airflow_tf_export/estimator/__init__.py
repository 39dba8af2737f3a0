"""Estimator-style model_fns exported on TensorFlow 2.21 (which has no tf.estimator).

A model_fn module written for `tf.estimator` runs after one change of import:

    from airflow_tf_export import estimator      # was: tf.estimator / import estimator

    def model_fn(features, labels, mode, params):
        ...
        return estimator.EstimatorSpec(mode, predictions=..., loss=..., train_op=...,
                                       export_outputs={...: estimator.export.PredictOutput(...)})

    definition = estimator.Estimator(
        model_fn, params={...},
        serving_input_receiver_fn=estimator.export.build_parsing_serving_input_receiver_fn(spec),
        supervised_input_receiver_fn=estimator.experimental.build_raw_supervised_input_receiver_fn(
            features, labels),
    )

The canned estimators (LinearClassifier, LinearRegressor, DNNClassifier, DNNRegressor,
DNNLinearCombinedClassifier, DNNLinearCombinedRegressor) are Estimators too, with
tf.estimator's arguments (docs/canned-estimators.md): `estimator.LinearClassifier(...)`.

`definition` is a model definition like a Keras ModelDefinition: the export operators, the
DAG templates and `savedmodel.write_saved_model` take it (or its import string) and write
SavedModels from the TF1 checkpoints (`model.ckpt-<step>`) an Estimator left in its
model_dir, built in `tf.compat.v1` graph mode.

Importing this package does not import TensorFlow: the names below are imported from their
modules on first use, and TensorFlow only inside functions.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_tf_export.estimator import experimental, export
    from airflow_tf_export.estimator.canned import (
        DNNClassifier,
        DNNLinearCombinedClassifier,
        DNNLinearCombinedRegressor,
        DNNRegressor,
        LinearClassifier,
        LinearRegressor,
    )
    from airflow_tf_export.estimator.definition import Estimator
    from airflow_tf_export.estimator.mode_keys import ModeKeys
    from airflow_tf_export.estimator.spec import EstimatorSpec

_MODULE_OF = {
    "Estimator": "airflow_tf_export.estimator.definition",
    "EstimatorSpec": "airflow_tf_export.estimator.spec",
    "ModeKeys": "airflow_tf_export.estimator.mode_keys",
    **{
        name: "airflow_tf_export.estimator.canned"
        for name in (
            "LinearClassifier",
            "LinearRegressor",
            "DNNClassifier",
            "DNNRegressor",
            "DNNLinearCombinedClassifier",
            "DNNLinearCombinedRegressor",
        )
    },
}
_SUBMODULES = ("experimental", "export")

__all__ = [
    "DNNClassifier",
    "DNNLinearCombinedClassifier",
    "DNNLinearCombinedRegressor",
    "DNNRegressor",
    "Estimator",
    "EstimatorSpec",
    "LinearClassifier",
    "LinearRegressor",
    "ModeKeys",
    "experimental",
    "export",
]


def __getattr__(name: str) -> Any:
    """The public name `name`, imported from its submodule on first use."""
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
