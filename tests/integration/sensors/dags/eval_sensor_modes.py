"""A DAG that runs EvalMetricsSensor in every mode against an eval dir that grows meanwhile.

Configured by the test through the environment: EVAL_SENSOR_MODEL_DIR (the model dir),
EVAL_SENSOR_WRITER (the TF event writer script), EVAL_SENSOR_RESULTS (a JSON file the last
task writes the sensors' XComs to). Each `grow_*` task starts a writer process that appends
one evaluation a few seconds later, so the sensor after it has to wait for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, task

from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor

MODEL_DIR = os.environ.get("EVAL_SENSOR_MODEL_DIR", "/nonexistent")
WRITER = os.environ.get("EVAL_SENSOR_WRITER", "")
RESULTS = os.environ.get("EVAL_SENSOR_RESULTS", "/nonexistent.json")
WRITE_DELAY_SECONDS = 4


def _evaluation(step: int) -> list[object]:
    metrics = {"loss": 1.0 / step, "auc": 0.5 + step / 1000}
    return [step, metrics, f"{MODEL_DIR}/model.ckpt-{step}"]


with DAG(
    dag_id="eval_sensor_modes",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
) as dag:

    def grow(step: int) -> None:
        """Start a writer that appends the evaluation of `step` after a delay."""
        subprocess.Popen(
            [
                sys.executable,
                WRITER,
                str(Path(MODEL_DIR) / "eval"),
                str(WRITE_DELAY_SECONDS),
                json.dumps([_evaluation(step)]),
            ],
            start_new_session=True,
        )

    grow_200 = task(task_id="grow_200")(grow)(200)
    deferrable = EvalMetricsSensor(
        task_id="wait_deferrable",
        model_dir=MODEL_DIR,
        min_step=200,
        required_metrics=["auc"],
        deferrable=True,
        poke_interval=1,
        timeout=120,
    )
    grow_300 = task(task_id="grow_300")(grow)(300)
    reschedule = EvalMetricsSensor(
        task_id="wait_reschedule",
        model_dir=MODEL_DIR,
        checkpoint_path=f"{MODEL_DIR}/model.ckpt-300",
        mode="reschedule",
        poke_interval=1,
        timeout=120,
    )
    grow_400 = task(task_id="grow_400")(grow)(400)
    poke = EvalMetricsSensor(
        task_id="wait_poke",
        model_dir="{{ params.model_dir }}",
        min_step="{{ params.last_step }}",
        thresholds={"auc": {"min": 0.8}, "loss": {"max": 0.5}},
        poke_interval=1,
        timeout=120,
        params={"model_dir": MODEL_DIR, "last_step": 400},
    )
    missed_skip = EvalMetricsSensor(
        task_id="miss_skips",
        model_dir=MODEL_DIR,
        min_step=100,
        thresholds={"auc": {"min": 0.99}},
        on_threshold_miss="skip",
        mode="reschedule",
        poke_interval=1,
        timeout=120,
    )
    grow_500 = task(task_id="grow_500")(grow)(500)
    missed_soft_fail = EvalMetricsSensor(
        task_id="miss_soft_fails",
        model_dir=MODEL_DIR,
        min_step=500,
        thresholds={"loss": {"max": 0.001}},
        soft_fail=True,
        deferrable=True,
        poke_interval=1,
        timeout=120,
    )

    @task(task_id="collect")
    def collect(deferrable: object, reschedule: object, poke: object) -> None:
        results = {"deferrable": deferrable, "reschedule": reschedule, "poke": poke}
        Path(RESULTS).write_text(json.dumps(results, sort_keys=True))

    collected = collect(
        deferrable=deferrable.output, reschedule=reschedule.output, poke=poke.output
    )
    grow_200 >> deferrable >> grow_300 >> reschedule >> grow_400 >> poke >> collected
    poke >> missed_skip
    poke >> grow_500 >> missed_soft_fail
