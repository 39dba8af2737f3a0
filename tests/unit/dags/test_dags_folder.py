"""The repo's demo DAG files parse without errors and without importing TensorFlow, with
AIRFLOW_TF_EXPORT_DEMO_DIR a local directory (`make demo`) or a gs:// prefix (the
docker/ compose file's emulator bucket)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).parents[3] / "dags"


@pytest.mark.parametrize("demo_dir", ["local", "gs://airflow-tf-export-demo/demo/"])
def test_demo_dags_parse_without_tensorflow(tmp_path: Path, demo_dir: str) -> None:
    demo_dir = str(tmp_path / "demo") if demo_dir == "local" else demo_dir
    script = (
        "import json, sys\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS_FOLDER)!r})\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "model_dirs = sorted({t.model_dir for d in bag.dags.values() for t in d.tasks\n"
        "                     if getattr(t, 'model_dir', None)})\n"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},\n"
        "                  'dags': sorted(bag.dag_ids), 'heavy': heavy[:5],\n"
        "                  'model_dirs': model_dirs}))\n"
    )
    env = {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_TF_EXPORT_DEMO_DIR": demo_dir,
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
        "model_dirs": [demo_dir.rstrip("/") + "/model"],
    }
