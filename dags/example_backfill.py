"""Demo: evaluate and export the demo model's historical checkpoints, one day per run.

Backfill it with `airflow backfill create --dag-id example_backfill --from-date ...
--to-date ...` on a deployment with a scheduler (the demo itself only runs the retraining
DAG). It reads the same model directory as `example_retraining`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum

from airflow_tf_export.dags.backfill import backfill_dag

# An absolute local path or a gs:// prefix, joined as a string: Path would turn gs:// into
# a local directory.
DEMO_DIR = os.environ.get("AIRFLOW_TF_EXPORT_DEMO_DIR") or str(
    Path(__file__).resolve().parents[1] / ".demo"
)
MODEL_DIR = f"{DEMO_DIR.rstrip('/')}/model"

dag = backfill_dag(
    dag_id="example_backfill",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    model_dir=MODEL_DIR,
    model_definition="airflow_tf_export.example.model:definition",
    evaluate="airflow_tf_export.example.evaluate:evaluate",
    exporters=[{"strategy": "best", "name": "backfill_best", "exports_to_keep": 3}],
    retention={"keep": {"newest": 3, "best": 1}},
    max_active_tis_per_dag=2,
    eval_timeout=timedelta(minutes=5),
    tags=["airflow-tf-export", "demo"],
)
