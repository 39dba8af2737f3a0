"""Every operator of the provider in one DAG: wait for eval metrics, branch on the comparison
with the best version, export best / latest (multi-mode) / final, then plan retention.

The model dir comes from the run's conf (`{"model_dir": "/abs/path" or "gs://bucket/p"}`).
"""

from __future__ import annotations

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Param

from airflow_tf_export.operators.compare import CompareBranchOperator
from airflow_tf_export.operators.export import (
    BestExportOperator,
    FinalExportOperator,
    LatestExportOperator,
)
from airflow_tf_export.operators.retention import RetentionOperator
from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor

MODEL = "airflow_tf_export.example.model:definition"
MODEL_DIR = "{{ params.model_dir }}"

with DAG(
    dag_id="tf_export_operators",
    schedule=None,
    params={"model_dir": Param("/tmp/model", type="string")},
    render_template_as_native_obj=True,
):
    wait = EvalMetricsSensor(
        task_id="wait_for_eval", model_dir=MODEL_DIR, min_step=60, poke_interval=1, timeout=120
    )
    compare = CompareBranchOperator(
        task_id="compare",
        model_dir=MODEL_DIR,
        eval_result="{{ ti.xcom_pull(task_ids='wait_for_eval') }}",
        follow_task_ids_if_better="export_best",
        follow_task_ids_if_not_better="keep_serving",
    )
    export_best = BestExportOperator(
        task_id="export_best", model_definition=MODEL, model_dir=MODEL_DIR, eval_result=wait.output
    )
    keep_serving = EmptyOperator(task_id="keep_serving")
    export_latest = LatestExportOperator(
        task_id="export_latest",
        name="latest",
        model_definition=MODEL,
        model_dir=MODEL_DIR,
        modes=("train", "eval", "serve"),
        exports_to_keep=2,
    )
    export_final = FinalExportOperator(
        task_id="export_final",
        name="final",
        model_definition=MODEL,
        model_dir=MODEL_DIR,
        max_steps=60,
    )
    retention = RetentionOperator(
        task_id="retention",
        exporter_dirs=[f"{MODEL_DIR}/export/best_exporter", f"{MODEL_DIR}/export/latest"],
        keep={"newest": 1, "best": {"n": 1, "metric": "loss"}},
        model_dir=MODEL_DIR,
        checkpoints_to_keep=1,
        dry_run=True,
        trigger_rule="none_failed",
    )
    wait >> compare >> [export_best, keep_serving]
    [export_best, keep_serving, export_latest, export_final] >> retention
