"""`airflow providers list` (the real Airflow CLI) shows this provider with its version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_tf_export import __version__


def test_airflow_providers_list_shows_provider(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    airflow = str(Path(sys.executable).parent / "airflow")
    out = subprocess.run(
        [airflow, "providers", "list", "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    providers = {row["package_name"]: row for row in json.loads(out.stdout)}
    assert providers["airflow-tf-export"]["version"] == __version__
