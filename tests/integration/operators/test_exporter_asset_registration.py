"""An export task whose exporter dir is known at parse time declares it as an inlet, so the
DAG processor registers the asset before any run. Two tasks announcing the first version of
a new exporter dir at once then add events to an existing asset instead of both creating it
(one of them failed on idx_asset_name_uri_unique). Real SQLite metadata DB, `airflow dags
reserialize`, then `airflow dags test` exporting a real SavedModel."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAG_FILE = """
import os

from airflow.sdk import DAG

from airflow_tf_export.operators.export import LatestExportOperator

with DAG(dag_id="asset_registration", schedule=None):
    LatestExportOperator(
        task_id="export_latest",
        name="latest",
        model_definition="airflow_tf_export.example.model:definition",
        model_dir=os.environ["TEST_MODEL_DIR"],
        validate=False,  # about asset registration; validation: test_operators_validation.py
    )

with DAG(dag_id="asset_known_at_run_time", schedule=None):
    LatestExportOperator(
        task_id="export_templated",
        name="templated",
        model_definition="airflow_tf_export.example.model:definition",
        model_dir="{{ var.value.get('model_dir', '/nowhere') }}",
    )
"""


def test_a_static_exporter_dir_is_registered_at_parse_time_and_gets_the_events(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model_dir, model_dir)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "asset_registration.py").write_text(textwrap.dedent(DAG_FILE))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
        "TEST_MODEL_DIR": str(model_dir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }

    def airflow(*args: str) -> None:
        done = subprocess.run(
            [AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def query(sql: str) -> list[tuple[object, ...]]:
        with sqlite3.connect(tmp_path / "airflow.db") as db:
            return db.execute(sql).fetchall()

    exporter_dir = str(model_dir / "export" / "latest")
    airflow("db", "migrate")
    airflow("dags", "reserialize")
    assert query("SELECT name, uri FROM asset") == [(exporter_dir, exporter_dir)]
    assert query("SELECT task_id FROM task_inlet_asset_reference") == [("export_latest",)]

    airflow("dags", "test", "asset_registration")
    ((asset_id,),) = query("SELECT id FROM asset")
    events = query("SELECT asset_id FROM asset_event")
    assert events == [(asset_id,)]
