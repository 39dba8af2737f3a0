"""The `airflow-tf-export` command works outside Airflow: importing it loads neither Airflow
nor TensorFlow (TensorFlow only once `export` writes a SavedModel)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_cli_imports_neither_airflow_nor_tensorflow() -> None:
    script = (
        "import json, sys\n"
        "from airflow_tf_export.cli.main import parser\n"
        "parser().parse_args(['versions', '/data/model/export/best'])\n"
        "heavy = ('airflow', 'tensorflow', 'keras')\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
