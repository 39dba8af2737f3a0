"""EvalMetricsSensor in a real DAG run (`airflow dags test`, SQLite metadata DB): deferrable
(trigger run inline), reschedule and poke mode, each waiting for an evaluation that a
TensorFlow writer process appends while it waits; threshold misses that skip."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
WRITER = HERE.parent / "events" / "tf_event_writer.py"
AIRFLOW = Path(sys.executable).parent / "airflow"
DAG_ID = "eval_sensor_modes"


@pytest.fixture(scope="module")
def dag_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    """Migrate one Airflow home, write the first evaluation, run the DAG once."""
    root = tmp_path_factory.mktemp("sensor_dag")
    model_dir, results = root / "model", root / "results.json"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "EVAL_SENSOR_MODEL_DIR": str(model_dir),
        "EVAL_SENSOR_WRITER": str(WRITER),
        "EVAL_SENSOR_RESULTS": str(results),
    }
    first = [[100, {"loss": 0.01, "auc": 0.6}, f"{model_dir}/model.ckpt-100"]]
    subprocess.run(
        [sys.executable, str(WRITER), str(model_dir / "eval"), "0", json.dumps(first)],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [str(AIRFLOW), "db", "migrate"], env=env, check=True, capture_output=True, timeout=300
    )
    run = subprocess.run(
        [str(AIRFLOW), "dags", "test", DAG_ID],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-5000:]
    yield root / "airflow" / "airflow.db", results, output


def _task_states(database: Path) -> dict[str, str]:
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ?", (DAG_ID,)
        ).fetchall()
    return dict(rows)


def test_every_mode_waits_and_returns_the_awaited_result(dag_run: tuple[Path, Path, str]) -> None:
    database, results, _ = dag_run
    states = _task_states(database)
    assert {t: states[t] for t in ("wait_deferrable", "wait_reschedule", "wait_poke")} == {
        "wait_deferrable": "success",
        "wait_reschedule": "success",
        "wait_poke": "success",
    }
    pushed = json.loads(results.read_text())
    assert pushed["deferrable"]["step"] == 200
    assert pushed["reschedule"]["step"] == 300
    assert pushed["reschedule"]["checkpoint_path"].endswith("model.ckpt-300")
    assert pushed["poke"]["step"] == 400
    assert pushed["poke"]["metrics"] == {"auc": 0.8999999761581421, "loss": 0.0024999999441206455}
    for result in pushed.values():
        assert result["source"].startswith(str(database.parent.parent / "model" / "eval"))


def test_the_sensors_really_waited(dag_run: tuple[Path, Path, str]) -> None:
    database, _, output = dag_run
    # Both deferrable sensors deferred and their trigger ran (wait_deferrable, miss_soft_fails).
    assert output.count("[DAG TEST] running trigger in line") == 2
    with sqlite3.connect(database) as db:
        reschedules = db.execute(
            "SELECT COUNT(*) FROM task_reschedule r JOIN task_instance t ON r.ti_id = t.id "
            "WHERE t.task_id = 'wait_reschedule'"
        ).fetchone()[0]
    assert reschedules >= 1
    # Each reschedule-mode poke after the first resumed from the cursor that the previous
    # one kept in the task state store (instead of reading the event files again).
    assert "resuming the eval reader where the previous poke stopped" in output
    # Each writer process opened its own event file: the sensors merged several files.
    eval_dir = database.parent.parent / "model" / "eval"
    assert len(list(eval_dir.glob("*.tfevents.*"))) == 5


def test_threshold_misses_skip_in_reschedule_and_deferrable_mode(
    dag_run: tuple[Path, Path, str],
) -> None:
    database, _, output = dag_run
    states = _task_states(database)
    assert states["miss_skips"] == "skipped"  # on_threshold_miss="skip"
    assert states["miss_soft_fails"] == "skipped"  # "fail" turned into a skip by soft_fail
    assert "auc=0.8999999761581421 is not >= 0.99" in output
    assert "Skipping due to soft_fail is set to True." in output
    assert states["collect"] == "success"
