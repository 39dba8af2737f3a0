"""Best, latest and final exports into a model dir migrated from tf.estimator, whose exporter
dirs hold the Estimator's own exports of the checkpoint being exported (step 150): every
export is expected to skip, so the model definition fails the task if a write is attempted.

The model dir comes from the run's conf (`{"model_dir": "/abs/path"}`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NoReturn

from airflow.sdk import DAG, Param

from airflow_tf_export.operators.compare import CompareOperator
from airflow_tf_export.operators.export import (
    BestExportOperator,
    FinalExportOperator,
    LatestExportOperator,
)

MODEL_DIR = "{{ params.model_dir }}"


def _build_model_must_not_run() -> NoReturn:
    raise AssertionError("the decision was to skip: no SavedModel may be written")


def skip_only_definition() -> Any:
    """The example definition whose build_model fails (imported when the task runs)."""
    from airflow_tf_export.example import model

    return dataclasses.replace(model.definition, build_model=_build_model_must_not_run)


with DAG(
    dag_id="tf_export_estimator_dir",
    schedule=None,
    params={"model_dir": Param("/tmp/model", type="string")},
    render_template_as_native_obj=True,
):
    CompareOperator(task_id="compare", name="best", model_dir=MODEL_DIR)
    BestExportOperator(
        task_id="export_best",
        name="best",
        model_definition=skip_only_definition,
        model_dir=MODEL_DIR,
    )
    LatestExportOperator(
        task_id="export_latest",
        name="latest",
        model_definition=skip_only_definition,
        model_dir=MODEL_DIR,
    )
    FinalExportOperator(
        task_id="export_final",
        name="final",
        model_definition=skip_only_definition,
        model_dir=MODEL_DIR,
        max_steps=150,
    )
