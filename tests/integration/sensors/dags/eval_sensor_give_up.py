"""A DAG whose EvalMetricsSensors cannot succeed, in every mode: some wait for a step that
never comes (their event files are in validation/, not in the default eval/), others require
a metric misspelt in letter case. They must all fail, on time, saying why.

Configured by the test through the environment: EVAL_GIVE_UP_MODEL_DIRS, the root holding
`keras/` (an evaluation in validation/) and `estimator/` (one with `mae` in eval/).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG

from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor

ROOT = Path(os.environ.get("EVAL_GIVE_UP_MODEL_DIRS", "/nonexistent"))
TIMEOUT_SECONDS = 3
MODES = {
    "poke": {"mode": "poke"},
    "reschedule": {"mode": "reschedule"},
    "deferrable": {"deferrable": True},
}

with DAG(
    dag_id="eval_sensor_give_up",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 1},  # a sensor timeout and a misspelling are never retried
) as dag:
    for name, mode in MODES.items():
        EvalMetricsSensor(
            task_id=f"timeout_{name}",
            model_dir=str(ROOT / "keras"),
            min_step=1,
            timeout=TIMEOUT_SECONDS,
            # The default poke interval in deferrable mode: the trigger must still stop at
            # the deadline.
            poke_interval=60 if name == "deferrable" else 1,
            **mode,
        )
        EvalMetricsSensor(
            task_id=f"misspelt_{name}",
            model_dir=str(ROOT / "estimator"),
            min_step=100,
            required_metrics=["MAE"],
            timeout=600,
            poke_interval=1,
            **mode,
        )
