"""Both DAG templates end to end with `airflow dags test` (SQLite Airflow DB, real TF).

The retraining template runs on local disk and on the GCS emulator (through an Airflow
connection); the backfill template runs over dated checkpoints and is re-run unchanged, and
over dated Keras weights files.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_tf_export.storage import storage_for
from airflow_tf_export.storage.exporter_dir import ExporterDir

AIRFLOW = str(Path(sys.executable).parent / "airflow")
GCS_CONNECTION = json.dumps(
    {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "test"}}
)
DAG_FILE = """
import os
from datetime import timedelta

import pendulum

from airflow_tf_export.dags.backfill import backfill_dag
from airflow_tf_export.dags.retraining import retraining_dag

START = pendulum.datetime(2024, 1, 1, tz="UTC")
COMMON = {
    "model_definition": "airflow_tf_export.example.model:definition",
    "evaluate": "airflow_tf_export.example.evaluate:evaluate",
    "eval_timeout": timedelta(minutes=2),
    "poke_interval": 0.5,
    "start_date": START,
}
for dag_id, model_dir in (
    ("retrain_local", os.environ["TEST_LOCAL_MODEL_DIR"]),
    ("retrain_gcs", os.environ.get("TEST_GCS_MODEL_DIR", "gs://unused-bucket/model")),
):
    globals()[dag_id] = retraining_dag(
        dag_id=dag_id,
        schedule="@daily",
        model_dir=model_dir,
        train="airflow_tf_export.example.train:train",
        train_kwargs={"steps": 20},
        exporters=[
            {"strategy": "best", "name": "best", "modes": ["train", "eval", "serve"]},
            {"strategy": "latest", "name": "latest", "exports_to_keep": 2},
            {"strategy": "final", "name": "final", "max_steps": 60},
        ],
        retention={"keep": {"newest": 1}, "checkpoints_to_keep": 1},
        **COMMON,
    )

backfill_local = backfill_dag(
    dag_id="backfill_local",
    model_dir=os.environ["TEST_BACKFILL_MODEL_DIR"],
    exporters=[{"strategy": "best", "name": "best"}],
    retention={"keep": {"newest": 1}},
    **COMMON,
)

backfill_keras = backfill_dag(
    dag_id="backfill_keras",
    model_dir=os.environ["TEST_KERAS_MODEL_DIR"],
    exporters=[{"strategy": "best", "name": "best"}],
    retention={"keep": {"newest": 1}},
    **{**COMMON, "model_definition": "airflow_tf_export.example.model:keras_weights_definition"},
)
"""


class AirflowHome:
    """A migrated SQLite Airflow home whose DAGs folder holds the template instances."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.env = env

    def dags_test(self, dag_id: str, date: str, **extra_env: str) -> dict[str, str]:
        """Run one DAG run; the final state of each task (mapped ones as `task[i]`)."""
        result = subprocess.run(
            [AIRFLOW, "dags", "test", dag_id, date],
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        return {
            (task if index < 0 else f"{task}[{index}]"): state
            for task, index, state in self._rows(
                "select ti.task_id, ti.map_index, ti.state from task_instance ti join dag_run dr "
                "on ti.dag_id = dr.dag_id and ti.run_id = dr.run_id "
                "where ti.dag_id = ? and date(dr.logical_date) = ?",
                dag_id,
                date,
            )
        }

    def xcoms(self, dag_id: str, task_id: str) -> list[Any]:
        rows = self._rows(
            "select value from xcom where dag_id = ? and task_id = ? and key = 'return_value'",
            dag_id,
            task_id,
        )
        return [json.loads(value) for (value,) in rows]

    def _rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.root / "airflow.db") as connection:
            return connection.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> AirflowHome:
    root = tmp_path_factory.mktemp("airflow-home")
    dags = root / "dags"
    dags.mkdir()
    (dags / "templates.py").write_text(textwrap.dedent(DAG_FILE))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(root),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root / 'airflow.db'}",
        "TEST_LOCAL_MODEL_DIR": str(root / "local-model"),
        "TEST_BACKFILL_MODEL_DIR": str(root / "backfill-model"),
        "TEST_KERAS_MODEL_DIR": str(root / "keras-model"),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, check=True)
    return AirflowHome(root, env)


def _committed(uri: str) -> list[Any]:
    return ExporterDir(storage_for(uri), uri).committed()


def test_retraining_on_local_disk(airflow_home: AirflowHome) -> None:
    model_dir = airflow_home.env["TEST_LOCAL_MODEL_DIR"]
    runs = [airflow_home.dags_test("retrain_local", f"2024-02-0{day}") for day in (1, 2, 3)]
    for day, states in enumerate(runs, start=1):
        gated = {"export_best": "success", "compare_best": "success"}
        assert {k: v for k, v in states.items() if k not in gated} == {
            "train": "success",
            "evaluate": "success",
            "wait_for_eval": "success",
            "export_latest": "success",
            # Steps 20 and 40 are not final (max_steps=60): nothing exported, so skipped.
            "export_final": "success" if day == 3 else "skipped",
            "retention": "success",
        }
        assert states["compare_best"] == "success"
        assert states["export_best"] in ("success", "skipped")
    finals = airflow_home.xcoms("retrain_local", "export_final")
    assert [(x["global_step"], x["exported"], x["reason"]) for x in finals][:2] == [
        (20, False, "skipped: not the final export"),
        (40, False, "skipped: not the final export"),
    ]
    compares = airflow_home.xcoms("retrain_local", "compare_best")
    exported_best = [c["candidate"]["global_step"] for c in compares if c["better"]]
    best = _committed(f"{model_dir}/export/best")
    # Retention keeps the newest and the current best; every kept version was "better".
    assert {m.global_step for m in best} <= set(exported_best)
    assert sorted(m.global_step for m in _committed(f"{model_dir}/export/latest")) == [60]
    (final,) = _committed(f"{model_dir}/export/final")
    assert final.global_step == 60
    assert set(best[-1].tags) == {"train", "eval", "serve"}  # multi-mode SavedModel
    assert dict(best[-1].signature_keys)["train"] == ("train",)
    # Checkpoint retention kept only what is needed: the latest and the exported ones.
    kept = sorted(p.name for p in Path(model_dir).glob("ckpt-*.index"))
    exported_steps = {m.global_step for m in best} | {60}
    assert kept == sorted(f"ckpt-{s}.index" for s in exported_steps)


def test_retraining_on_the_gcs_emulator(
    airflow_home: AirflowHome, gcs_emulator: str, gcs_bucket: tuple[Any, str]
) -> None:
    _, bucket = gcs_bucket
    model_dir = f"gs://{bucket}/model"
    env = {
        "TEST_GCS_MODEL_DIR": model_dir,
        "STORAGE_EMULATOR_HOST": gcs_emulator,
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": GCS_CONNECTION,
    }
    for day in (1, 2):
        states = airflow_home.dags_test("retrain_gcs", f"2024-03-0{day}", **env)
        assert states["retention"] == states["export_latest"] == "success", states
    storage = storage_for(model_dir)
    assert storage.exists(f"{model_dir}/ckpt-40.index")
    assert [m.global_step for m in _committed(f"{model_dir}/export/latest")] == [40]
    best = _committed(f"{model_dir}/export/best")
    assert best and best[0].checkpoint_path.startswith(model_dir)
    assert storage.exists(f"{best[-1].checkpoint_path}.index")


def test_backfill_interval_evaluates_exports_and_reruns_unchanged(
    airflow_home: AirflowHome,
) -> None:
    from airflow_tf_export.example.train import train

    model_dir = Path(airflow_home.env["TEST_BACKFILL_MODEL_DIR"])
    dated = {}
    for hour in (3, 9, 30):  # two checkpoints on Jan 1st, one on Jan 2nd
        prefix = Path(train(model_dir=str(model_dir), steps=10)["checkpoint_path"])
        when = datetime(2024, 1, 1, tzinfo=UTC).timestamp() + hour * 3600
        for path in model_dir.glob(prefix.name + ".*"):
            os.utime(path, (when, when))
        dated[prefix.name] = hour

    # A manual run at Jan 2nd covers the interval ending there: [Jan 1st, Jan 2nd).
    states = airflow_home.dags_test("backfill_local", "2024-01-02")
    exports = [states.pop(f"export_best[{i}]") for i in (0, 1)]
    assert states == {
        "select_checkpoints": "success",
        **{f"{task}[{i}]": "success" for task in ("evaluate", "wait_for_eval") for i in (0, 1)},
        "retention": "success",
    }
    # A checkpoint that is not better exports nothing: skipped (retention runs all the same).
    assert "success" in exports and set(exports) <= {"success", "skipped"}
    (selected,) = airflow_home.xcoms("backfill_local", "select_checkpoints")
    assert [Path(p).name for p in selected] == ["ckpt-10", "ckpt-20"]
    versions_before = [m.version for m in _committed(f"{model_dir}/export/best")]
    events_before = sorted(p.name for p in (model_dir / "eval").iterdir())
    assert len(events_before) == 2 and versions_before

    airflow_home.dags_test("backfill_local", "2024-01-02")
    assert [m.version for m in _committed(f"{model_dir}/export/best")] == versions_before
    assert sorted(p.name for p in (model_dir / "eval").iterdir()) == events_before
    evaluated = Counter(x["evaluated"] for x in airflow_home.xcoms("backfill_local", "evaluate"))
    assert evaluated[False] >= 2


def test_backfill_over_keras_weights_files(airflow_home: AirflowHome) -> None:
    """`model.save_weights("ckpt-<step>.weights.h5")` files, no state file: the interval's
    files are selected by time, evaluated by the example evaluator and exported by the best
    exporter, serving what the Keras model computes."""
    import numpy as np
    import tensorflow as tf

    from airflow_tf_export.example import model as example

    model_dir = Path(airflow_home.env["TEST_KERAS_MODEL_DIR"])
    model_dir.mkdir()
    features, _ = example.make_dataset(8, seed=3)
    inputs = {name: tf.constant(values) for name, values in features.items()}
    rng = np.random.default_rng(0)
    outputs = {}
    for step, hour in ((5, 3), (10, 9), (15, 30)):  # two files on Jan 1st, one on Jan 2nd
        model = example.build_model()
        for variable in model.weights:
            variable.assign(rng.normal(size=variable.shape).astype(variable.dtype))
        path = model_dir / f"ckpt-{step}.weights.h5"
        model.save_weights(str(path))
        when = datetime(2024, 1, 1, tzinfo=UTC).timestamp() + hour * 3600
        os.utime(path, (when, when))
        outputs[step] = model(inputs, training=False).numpy()[:, 0]

    states = airflow_home.dags_test("backfill_keras", "2024-01-02")
    exports = {states.pop(f"export_best[{i}]") for i in (0, 1)}
    assert set(states.values()) == {"success"}, states
    assert "success" in exports and exports <= {"success", "skipped"}
    (selected,) = airflow_home.xcoms("backfill_keras", "select_checkpoints")
    assert [Path(p).name for p in selected] == ["ckpt-5.weights.h5", "ckpt-10.weights.h5"]
    evaluated = {x["eval_result"]["step"] for x in airflow_home.xcoms("backfill_keras", "evaluate")}
    assert evaluated == {5, 10}
    (best,) = _committed(f"{model_dir}/export/best")
    assert best.checkpoint_path in selected
    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(age)])),
                    "language": tf.train.Feature(bytes_list=tf.train.BytesList(value=[lang])),
                }
            )
        ).SerializeToString()
        for age, lang in zip(features["age"], features["language"], strict=True)
    ]
    loaded = tf.saved_model.load(f"{model_dir}/export/best/{best.version}")
    served = loaded.signatures["predict"](examples=tf.constant(examples))["logistic"].numpy()
    np.testing.assert_allclose(served, outputs[best.global_step], atol=1e-6)
