"""The custom model_fn section of docs/estimator-migration.md, run: its model module,
definition module and DAG file are written out as a user would save them, the definition
exports the real Estimator checkpoint, and the DAG runs under `airflow dags test` against
a real (SQLite) Airflow metadata DB, its Best and Latest exports loading back and computing
what the Estimator's own exports computed."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from estimator_support import (
    CHECKPOINT_NAME,
    CUSTOM,
    assert_matches,
    reference,
    run_eval,
    run_serving_v1,
    serialized_examples,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "estimator-migration.md"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAG_ID = "export_estimator_model"
_BLOCK = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)


def doc_blocks() -> list[str]:
    """Every python block of the doc, dedented."""
    return [textwrap.dedent(code) for _, code in _BLOCK.findall(DOC.read_text())]


def doc_files() -> dict[str, str]:
    """The blocks that are files (first line `# <path>.py`), by path."""
    files = {}
    for code in doc_blocks():
        first, _, rest = code.partition("\n")
        match = re.fullmatch(r"# ([\w/]+\.py)", first)
        if match:
            files[match.group(1)] = rest
    return files


def block_containing(text: str) -> str:
    (code,) = [code for code in doc_blocks() if text in code]
    return code


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The doc's files saved as a user's project; its directory is importable."""
    root = tmp_path_factory.mktemp("doc_project")
    files = doc_files()
    assert sorted(files) == [
        "dags/export_estimator_model.py",
        "my_model/definition.py",
        "my_model/model.py",
    ]
    for relative, code in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(code)
    (root / "my_model" / "__init__.py").write_text("")
    return root


@pytest.fixture(scope="module")
def definition(project: Path) -> Any:
    from airflow_tf_export.savedmodel import resolve_definition

    sys.path.insert(0, str(project))
    try:
        yield resolve_definition("my_model.definition:definition")
    finally:
        sys.path.remove(str(project))


def test_the_before_import_fails_on_tensorflow_2_21_and_the_after_import_works() -> None:
    before = block_containing("# before (TensorFlow <= 2.15)")
    after = block_containing("# after (TensorFlow 2.21)")
    with pytest.raises(ImportError):
        exec(before, {})
    namespace: dict[str, Any] = {}
    exec(after, namespace)
    assert namespace["estimator"].ModeKeys.PREDICT == "infer"


def test_the_doc_definition_exports_the_estimator_checkpoint_and_serves_as_it_did(
    definition: Any, tmp_path: Path
) -> None:
    from airflow_tf_export.savedmodel import write_saved_model

    export_dir = tmp_path / "export"
    written = write_saved_model(
        definition,
        str(CUSTOM / "model_dir" / CHECKPOINT_NAME),
        export_dir,
        modes=("train", "eval", "serve"),
    )
    assert written.global_step == 150
    expected = reference()
    for key, outputs in run_serving_v1(export_dir, serialized_examples()).items():
        for name, value in outputs.items():
            assert_matches(value, expected["serving"][key][name], f"{key}/{name}")
    # The doc's loading sample, on this export.
    import tensorflow as tf

    namespace: dict[str, Any] = {"tf": tf, "export_dir": str(export_dir)}
    exec(block_containing('loader.load(session, ["train"], export_dir)'), namespace)
    assert namespace["kernel"].op.type == "VarHandleOp"
    assert namespace["train_op"].name == "Adam"


def test_the_doc_dag_parses_without_tensorflow(project: Path) -> None:
    script = (
        "import runpy, sys\n"
        f"dag = runpy.run_path({str(project / 'dags' / 'export_estimator_model.py')!r})['dag']\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]\n"
        "print(dag.dag_id, sorted(dag.task_dict), heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == (f"{DAG_ID} ['export_best', 'export_latest'] []")


@pytest.fixture(scope="module")
def airflow_env(project: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated SQLite metadata DB whose dags folder is the doc's `dags/`; the doc's
    project is on the path of the task processes."""
    home = tmp_path_factory.mktemp("airflow-home")
    paths = [str(project), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "PYTHONPATH": os.pathsep.join(paths),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600
    )
    return env


def xcoms(env: dict[str, str]) -> dict[str, Any]:
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        rows = db.execute(
            "SELECT task_id, value FROM xcom WHERE dag_id = ? AND key = 'return_value'",
            (DAG_ID,),
        ).fetchall()
    return {task_id: json.loads(value) for task_id, value in rows}


def test_the_doc_dag_exports_the_estimator_model_dir_with_a_real_airflow_db(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    """Best (serve) and Latest (train, eval, serve) exports of a copy of the Estimator's
    model_dir (its own exports in export/best and export/latest included), by import string;
    each published version loads and computes what the Estimator computed."""
    model_dir = tmp_path / "model_dir"
    shutil.copytree(CUSTOM / "model_dir", model_dir)
    estimator_exports = sorted(str(p.relative_to(model_dir)) for p in model_dir.glob("export/*/*"))
    completed = subprocess.run(
        [
            AIRFLOW,
            "dags",
            "test",
            DAG_ID,
            "2026-01-02",
            "--conf",
            json.dumps({"model_dir": str(model_dir)}),
        ],
        capture_output=True,
        text=True,
        env=airflow_env,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    results = xcoms(airflow_env)
    best, latest = results["export_best"], results["export_latest"]
    expected = reference()
    for result, name in ((best, "best_tf2"), (latest, "latest_tf2")):
        assert result["exported"] is True, result
        assert result["uri"] == str(model_dir / "export" / name)
        assert result["global_step"] == 150
        assert result["checkpoint_path"] == str(model_dir / CHECKPOINT_NAME)
        served = run_serving_v1(Path(result["version_uri"]), serialized_examples())
        for key, outputs in served.items():
            for output, value in outputs.items():
                assert_matches(value, expected["serving"][key][output], f"{name} {key}/{output}")
    assert best["eval_result"]["metrics"]["loss"] == pytest.approx(0.59375, abs=1e-6)
    assert best["metadata"]["tags"] == ["serve"]
    assert latest["metadata"]["tags"] == ["train", "eval", "serve"]
    evaluated = run_eval(Path(latest["version_uri"]))
    for key, value in evaluated.items():
        assert_matches(value, expected["eval"]["outputs"][key], key)
    # The Estimator's own exports are untouched.
    assert estimator_exports == sorted(
        str(p.relative_to(model_dir))
        for p in model_dir.glob("export/*/*")
        if not p.parent.name.endswith("_tf2")
    )
