"""Every operator inside a real DAG run: `airflow dags test` against a SQLite metadata DB
(migrated once for this module), on local disk and on the GCS emulator through an Airflow
connection with anonymous credentials. XComs, task states and asset events are read back
from the metadata DB; every published SavedModel is loaded with TensorFlow."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from operator_support import GCS_CONNECTION, classify, load_version

from airflow_tf_export.storage import Storage
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage

DAG_ID = "tf_export_operators"
DAGS_FOLDER = Path(__file__).parent / "dags"
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@dataclass(frozen=True)
class AirflowHome:
    path: Path
    env: dict[str, str]

    def dags_test(
        self, logical_date: str, conf: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AIRFLOW, "dags", "test", DAG_ID, logical_date, "--conf", json.dumps(conf)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=600,
        )

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.path / "airflow.db") as db:
            return db.execute(sql, args).fetchall()

    def run_id(self, logical_date: str) -> str:
        ((run_id,),) = self.query(
            "SELECT run_id FROM dag_run WHERE dag_id = ? AND logical_date LIKE ?",
            DAG_ID,
            f"{logical_date}%",
        )
        return str(run_id)

    def states(self, run_id: str) -> dict[str, str]:
        rows = self.query(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
            DAG_ID,
            run_id,
        )
        return dict(rows)

    def xcom(self, run_id: str, task_id: str) -> Any:
        ((value,),) = self.query(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? "
            "AND key = 'return_value'",
            DAG_ID,
            run_id,
            task_id,
        )
        return json.loads(value)

    def asset_events(self, uri: str) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.uri = ? ORDER BY e.id",
            uri,
        )
        return [json.loads(extra) for (extra,) in rows]


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> AirflowHome:
    """A migrated SQLite metadata DB whose dags folder holds tf_export_operators.py."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600
    )
    return AirflowHome(home, env)


@pytest.fixture
def local_model_dir(trained_model_dir: Path, tmp_path: Path) -> Iterator[str]:
    target = tmp_path / "model"
    shutil.copytree(trained_model_dir, target)
    yield str(target)


def check_exports(storage: Storage, run: dict[str, Any]) -> None:
    """Each export task's XCom is JSON with a version that loads and serves."""
    for task_id in ("export_best", "export_latest", "export_final"):
        result = run[task_id]
        assert result["exported"] is True, result
        assert result["global_step"] == 60
        outputs = classify(load_version(storage, result["version_uri"]), [33], ["spanish"])
        assert outputs["scores"].shape == (1, 2)
    assert run["export_latest"]["metadata"]["tags"] == ["train", "eval", "serve"]


def run_dag(
    home: AirflowHome, logical_date: str, model_dir: str
) -> tuple[dict[str, str], dict[str, Any]]:
    completed = home.dags_test(logical_date, {"model_dir": model_dir})
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    run_id = home.run_id(logical_date)
    states = home.states(run_id)
    # Every task that ran pushed its outcome, a skipped export task (nothing published)
    # too; a task skipped by the branch never ran.
    ran = {t for (t,) in home.query("SELECT task_id FROM xcom WHERE run_id = ?", run_id)}
    xcoms = {t: home.xcom(run_id, t) for t in ran}
    return states, xcoms


def test_dag_on_local_disk_exports_then_branches_away_on_the_rerun(
    airflow_home: AirflowHome, local_model_dir: str
) -> None:
    states, first = run_dag(airflow_home, "2026-01-01", local_model_dir)
    assert states == {
        "wait_for_eval": "success",
        "compare": "success",
        "export_best": "success",
        "keep_serving": "skipped",
        "export_latest": "success",
        "export_final": "success",
        "retention": "success",
    }
    assert first["wait_for_eval"]["step"] == 60
    assert first["compare"]["better"] is True
    check_exports(LocalStorage(), first)
    lineage = first["export_best"]["metadata"]["lineage"]
    assert (lineage["dag_id"], lineage["task_id"], lineage["try_number"]) == (
        DAG_ID,
        "export_best",
        1,
    )
    best_uri = first["export_best"]["uri"]
    (event,) = airflow_home.asset_events(best_uri)
    assert event["version"] == first["export_best"]["version"]
    assert event["metrics"]["loss"] == pytest.approx(0.5)
    retention = first["retention"]
    assert retention["dry_run"] is True
    assert [p["uri"] for p in retention["exporters"]] == [best_uri, first["export_latest"]["uri"]]
    assert [d["step"] for d in retention["checkpoints"]["delete"]] == [20, 40]

    states, second = run_dag(airflow_home, "2026-01-02", local_model_dir)
    assert (states["export_best"], states["keep_serving"]) == ("skipped", "success")
    # Nothing new to export: the export tasks end as skipped, retention runs all the same.
    assert (states["export_latest"], states["export_final"]) == ("skipped", "skipped")
    assert states["retention"] == "success"
    assert "export_best" not in second  # skipped by the branch: it never ran
    assert second["compare"]["better"] is False
    assert second["compare"]["existing_version"] == first["export_best"]["version"]
    for task_id in ("export_latest", "export_final"):
        assert second[task_id]["existing_version"] == first[task_id]["version"]
        assert second[task_id]["new_version"] is None
    assert len(airflow_home.asset_events(best_uri)) == 1
    assert Path(local_model_dir, "ckpt-20.index").exists()  # dry run deleted nothing


def test_dag_on_the_gcs_emulator_through_an_airflow_connection(
    airflow_home: AirflowHome,
    trained_model_dir: Path,
    gcs_emulator: str,
    gcs_bucket: tuple[Any, str],
) -> None:
    client, bucket = gcs_bucket
    storage = GcsStorage(client)
    model_dir = f"gs://{bucket}/model"
    storage.upload_dir(trained_model_dir, model_dir)
    home = AirflowHome(
        airflow_home.path,
        {
            **airflow_home.env,
            "STORAGE_EMULATOR_HOST": gcs_emulator,
            "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": GCS_CONNECTION,
        },
    )
    states, run = run_dag(home, "2026-02-01", model_dir)
    assert states["export_best"] == states["retention"] == "success"
    assert run["export_best"]["uri"] == f"{model_dir}/export/best_exporter"
    check_exports(storage, run)
    (event,) = home.asset_events(run["export_final"]["uri"])
    assert event["version_uri"] == run["export_final"]["version_uri"]
