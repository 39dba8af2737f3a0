"""Importing the provider, its Airflow classes and its DAG templates must not load TensorFlow."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import airflow_tf_export

_PACKAGE_DIR = Path(airflow_tf_export.__file__).parent
_AIRFLOW_FACING = ("operators", "sensors", "triggers", "hooks", "dags")


def _airflow_facing_modules() -> list[str]:
    modules = ["airflow_tf_export", "airflow_tf_export.get_provider_info"]
    for kind in _AIRFLOW_FACING:
        modules.append(f"airflow_tf_export.{kind}")
        for info in pkgutil.walk_packages([str(_PACKAGE_DIR / kind)], f"airflow_tf_export.{kind}."):
            modules.append(info.name)
    return modules


def test_airflow_facing_modules_do_not_import_tensorflow() -> None:
    modules = _airflow_facing_modules()
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "heavy = ('tensorflow', 'keras')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing {modules} loaded {loaded[:10]}"


def test_hygiene_check_detects_tensorflow() -> None:
    """The check above can fail: importing the SavedModel writer's dependency is detected."""
    script = "import sys, tensorflow; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True"


def test_operator_modules_import_only_the_savedmodel_modules_they_use() -> None:
    """DAG parsing imports the operators; the savedmodel package re-exports lazily, so they
    load savedmodel.modes (mode names, checked at parse time) and savedmodel.export_run (the
    export flow, which imports the writer only when it writes), not the writer's modules."""
    modules = [m for m in _airflow_facing_modules() if ".dags" not in m]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "                        if m.startswith('airflow_tf_export.savedmodel'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [
        "airflow_tf_export.savedmodel",
        "airflow_tf_export.savedmodel.export_run",
        "airflow_tf_export.savedmodel.modes",
    ]
