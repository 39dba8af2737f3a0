"""Demo: retrain the example model, evaluate it, export it three ways, clean up.

The model directory is `$AIRFLOW_TF_EXPORT_DEMO_DIR/model`: an absolute local path or a
`gs://` prefix (default: the repo's `.demo/`).
Run it with `make demo`, or `airflow dags test example_retraining`.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum

from airflow_tf_export.dags.retraining import retraining_dag

# An absolute local path or a gs:// prefix, joined as a string: Path would turn gs:// into
# a local directory.
DEMO_DIR = os.environ.get("AIRFLOW_TF_EXPORT_DEMO_DIR") or str(
    Path(__file__).resolve().parents[1] / ".demo"
)
MODEL_DIR = f"{DEMO_DIR.rstrip('/')}/model"
STEPS_PER_RUN = 40
MAX_STEPS = 200
KEEP = {"newest": 2, "best": 1}

dag = retraining_dag(
    dag_id="example_retraining",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    model_dir=MODEL_DIR,
    model_definition="airflow_tf_export.example.model:definition",
    train="airflow_tf_export.example.train:train",
    train_kwargs={"steps": STEPS_PER_RUN},
    evaluate="airflow_tf_export.example.evaluate:evaluate",
    required_metrics=["loss", "accuracy", "auc"],
    exporters=[
        {"strategy": "best", "name": "best", "modes": ["train", "eval", "serve"]},
        {"strategy": "latest", "name": "latest", "exports_to_keep": 3},
        {"strategy": "final", "name": "final", "max_steps": MAX_STEPS},
    ],
    # A dry run: the retention task logs what the keep rules would delete (versions and
    # checkpoints); the demo's report shows the same decisions. Drop dry_run to delete.
    retention={"keep": KEEP, "checkpoints_to_keep": 2, "dry_run": True},
    eval_timeout=timedelta(minutes=5),
    tags=["airflow-tf-export", "demo"],
)
