"""The repo's demo DAG files parse without errors and without importing TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DAGS_FOLDER = Path(__file__).parents[3] / "dags"


def test_demo_dags_parse_without_tensorflow(tmp_path: Path) -> None:
    script = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS_FOLDER)!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},\n"
        "                  'dags': sorted(bag.dag_ids), 'heavy': heavy[:5]}))\n"
    )
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_TF_EXPORT_DEMO_DIR": str(tmp_path / "demo"),
        "PATH": "/usr/bin:/bin",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {
        "errors": {},
        "dags": ["example_backfill", "example_retraining"],
        "heavy": [],
    }
