"""EvalMetricsSensors that cannot succeed, in a real DAG run (`airflow dags test`, SQLite):
each fails for its reason, on time, without retry, in poke, reschedule and deferrable mode.
The deferrable one runs its trigger in line, where nothing but the trigger's own deadline
can end it; the run has a hard wall-clock limit."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

HERE = Path(__file__).parent
EVENTS = HERE.parent / "events"
AIRFLOW = Path(sys.executable).parent / "airflow"
DAG_ID = "eval_sensor_give_up"
TIMEOUT_SECONDS = 3
MARGIN_SECONDS = 10
"""What a timed-out trigger may take beyond its deadline: its last check and its event."""
HARD_LIMIT_SECONDS = 420
"""The whole run (Airflow startup and six tasks); a trigger that never ends is killed here."""

WRITE_EVALUATIONS = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tf_event_writer import estimator_event_file
root = Path(sys.argv[2])
keras = [(1, {"epoch_loss": 0.5, "epoch_mae": 0.25}, None)]
estimator_event_file(root / "keras" / "validation", keras)
estimator_event_file(root / "estimator" / "eval", [(100, {"loss": 0.5, "mae": 0.25}, None)])
"""


@pytest.fixture(scope="module")
def dag_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str, float]]:
    root = tmp_path_factory.mktemp("sensor_give_up")
    models = root / "models"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "EVAL_GIVE_UP_MODEL_DIRS": str(models),
    }
    subprocess.run(
        [sys.executable, "-c", WRITE_EVALUATIONS, str(EVENTS), str(models)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )
    started = time.monotonic()
    run = subprocess.run(  # killed (SIGKILL) past the hard limit
        [str(AIRFLOW), "dags", "test", DAG_ID],
        env=env,
        capture_output=True,
        text=True,
        timeout=HARD_LIMIT_SECONDS,
    )
    yield (
        root / "airflow" / "airflow.db",
        models,
        run.stdout + run.stderr,
        time.monotonic() - started,
    )


def _task_instances(database: Path) -> dict[str, tuple[str, int]]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT task_id, state, try_number FROM task_instance WHERE dag_id = ?", (DAG_ID,)
        ).fetchall()
    return {task_id: (state, try_number) for task_id, state, try_number in rows}


def _task_log(output: str, task_id: str) -> str:
    """The lines of the run between this task's starts and ends (a task in reschedule mode
    starts once per poke)."""
    blocks = re.findall(
        rf"\[DAG TEST\] starting task_id={task_id} .*?\[DAG TEST\] end task task_id={task_id} ",
        output,
        re.S,
    )
    assert blocks, f"{task_id} did not run"
    return "".join(blocks)


def _time(line: str) -> datetime:
    return datetime.fromisoformat(line.split()[0].rstrip("Z"))


def test_every_sensor_fails_once_without_retry(dag_run: tuple[Path, Path, str, float]) -> None:
    database, _, output, _ = dag_run
    assert _task_instances(database) == {
        f"{reason}_{mode}": ("failed", 1)
        for reason in ("timeout", "misspelt")
        for mode in ("poke", "reschedule", "deferrable")
    }, output[-5000:]


def test_the_deferrable_sensor_ends_at_its_deadline(dag_run: tuple[Path, Path, str, float]) -> None:
    _, models, output, duration = dag_run
    assert duration < HARD_LIMIT_SECONDS
    log = _task_log(output, "timeout_deferrable")
    (deferred,) = [line for line in log.splitlines() if "Pausing task as DEFERRED" in line]
    (completed,) = [line for line in log.splitlines() if "[DAG TEST] Trigger completed" in line]
    waited = (_time(completed) - _time(deferred)).total_seconds()
    assert 0 < waited <= TIMEOUT_SECONDS + MARGIN_SECONDS, log[-3000:]
    assert "AirflowSensorTimeout" in log
    keras = models / "keras"
    assert re.search(
        r"Sensor has timed out; run duration of [\d.]+ seconds reached the timeout of 3 seconds\. "
        rf"Last look: 0 event files match {re.escape(str(keras))}/eval/\*\.tfevents\.\* "
        r"\(event_file_pattern='eval/\*\.tfevents\.\*'\): no evaluation recorded yet; waiting "
        r"for global step >= 1 .*; if the evaluation writes there, set "
        r"event_file_pattern='validation/\*\.tfevents\.\*'",
        log,
    ), log[-3000:]


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_poke_and_reschedule_mode_time_out_saying_the_same(
    dag_run: tuple[Path, Path, str, float], mode: str
) -> None:
    _, models, output, _ = dag_run
    log = _task_log(output, f"timeout_{mode}")
    assert "AirflowSensorTimeout" in log
    assert "reached the timeout of 3 seconds. Last look: 0 event files match " in log
    assert f"Event files elsewhere in {models / 'keras'}: validation/ (1 file)" in log


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_misspelt_metric_fails_at_once_in_every_mode(
    dag_run: tuple[Path, Path, str, float], mode: str
) -> None:
    _, models, output, _ = dag_run
    log = _task_log(output, f"misspelt_{mode}")
    assert "AirflowFailException" in log
    assert (
        f"waiting for eval results in {models / 'estimator'} failed: required_metrics names "
        "'MAE', but the evaluation at step 100 has 'mae': metric names are case-sensitive"
    ) in log
