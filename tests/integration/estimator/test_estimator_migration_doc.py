"""docs/estimator-migration.md, run. Its definition modules and DAG file are saved as a
user's project; the definitions export the real Estimator checkpoints of tests/data/estimator
and compute what the Estimator's own exports computed; the DAG runs under `airflow dags test`
against a real (SQLite) Airflow metadata DB on a copy of the LinearClassifier model_dir and
does what the page says (its XCom reasons are the page's); and, where a TensorFlow 2.15
interpreter is given, the page's TensorFlow 2.15 training code trains a model_dir that the
page's definition then exports."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from estimator_support import (
    CHECKPOINT_NAME,
    CUSTOM,
    DATA,
    assert_matches,
    file_digests,
    reference,
    run_serving_v1,
    serialized_examples,
)

sys.path.insert(0, str(Path(__file__).resolve().parent / "canned"))
from canned_support import run_eval as run_canned_eval
from canned_support import supervised_values

DOC = Path(__file__).resolve().parents[3] / "docs" / "estimator-migration.md"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAG_ID = "export_census"
LINEAR = "linear_classifier"
# A python of TensorFlow 2.15 + tensorflow-estimator 2.15 (tests/data/estimator/README.md).
TF215_PYTHON = os.environ.get("TF215_PYTHON")
_BLOCK = re.compile(r"^( *)```(python|text)\n(.*?)^\1```", re.S | re.M)


def doc_blocks(kind: str = "python") -> list[str]:
    """Every block of the doc of that kind, dedented."""
    return [textwrap.dedent(code) for _, k, code in _BLOCK.findall(DOC.read_text()) if k == kind]


def doc_files() -> dict[str, str]:
    """The blocks that are files of the TensorFlow 2.21 project (first line `# <path>.py`)."""
    files = {}
    for code in doc_blocks():
        first, _, rest = code.partition("\n")
        match = re.fullmatch(r"# ([\w/]+\.py)", first)
        if match:
            files[match.group(1)] = rest
    return files


def block_containing(text: str, kind: str = "python") -> str:
    (code,) = [code for code in doc_blocks(kind) if text in code]
    return code


def linear_reference() -> dict[str, Any]:
    return json.loads((DATA / LINEAR / "reference" / "outputs.json").read_text())


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The doc's files saved as a user's project, importable while the tests run."""
    root = tmp_path_factory.mktemp("doc_project")
    files = doc_files()
    assert sorted(files) == [
        "census/definition.py",
        "dags/export_census.py",
        "my_model/definition.py",
        "my_model/model.py",
    ]
    for relative, code in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(code)
    for package in ("census", "my_model"):
        (root / package / "__init__.py").write_text("")
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))


def test_the_before_import_fails_on_tensorflow_2_21_and_the_after_import_works() -> None:
    before = block_containing("# before (TensorFlow <= 2.15)")
    after = block_containing("# after (TensorFlow 2.21)")
    with pytest.raises(ImportError):
        exec(before, {})
    namespace: dict[str, Any] = {}
    exec(after, namespace)
    assert namespace["estimator"].ModeKeys.PREDICT == "infer"


def test_the_model_fn_definition_exports_the_estimator_checkpoint_and_serves_as_it_did(
    project: Path, tmp_path: Path
) -> None:
    import tensorflow as tf

    from airflow_tf_export.savedmodel import resolve_definition, write_saved_model

    definition = resolve_definition("my_model.definition:definition")
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
    namespace: dict[str, Any] = {"tf": tf, "export_dir": str(export_dir)}
    exec(block_containing('loader.load(session, ["train"], export_dir)'), namespace)
    assert namespace["kernel"].op.type == "VarHandleOp"
    assert namespace["train_op"].name == "Adam"


def linear_examples() -> list[bytes]:
    """The 8 serialized tf.Examples the LinearClassifier's reference outputs were computed on."""
    return [base64.b64decode(text) for text in linear_reference()["serialized_examples"]]


def assert_serves_as_the_estimator_did(export_dir: Path) -> None:
    expected = linear_reference()["serving"]
    served = run_serving_v1(export_dir, linear_examples())
    assert sorted(served) == sorted(expected)
    for key, outputs in served.items():
        for name, value in outputs.items():
            assert_matches(value, expected[key][name], f"{export_dir} {key}/{name}")


def assert_evaluates_as_the_estimator_did(export_dir: Path) -> None:
    evaluated = run_canned_eval(export_dir, supervised_values(LINEAR))
    for key, value in linear_reference()["eval"]["outputs"].items():
        assert_matches(evaluated[key], value, f"{export_dir} eval {key}")


def test_the_canned_definition_exported_outside_airflow_computes_what_the_estimator_did(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = block_containing("write_saved_model(classifier")
    model_dir = tmp_path / "census"
    shutil.copytree(DATA / LINEAR / "model_dir", model_dir, ignore=shutil.ignore_patterns("export"))
    export_dir = tmp_path / "exports" / "census" / "1"
    assert code.count('"/models/census"') == 1 and code.count('"/exports/census/1"') == 1
    code = code.replace('"/models/census"', repr(str(model_dir)))
    code = code.replace('"/exports/census/1"', repr(str(export_dir)))
    exec(compile(code, str(DOC), "exec"), {})

    serve_keys = ("classification", "predict", "regression", "serving_default")
    printed = capsys.readouterr().out.splitlines()[-1]
    assert printed == str(150) + " " + str({"eval": ("eval",), "serve": serve_keys})
    assert_serves_as_the_estimator_did(export_dir)
    assert_evaluates_as_the_estimator_did(export_dir)


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


def estimator_version_of_step(exporter: str, step: int) -> str:
    """The version the Estimator's exporter wrote for `step` (reference/decisions.json)."""
    decisions = json.loads((DATA / LINEAR / "reference" / "decisions.json").read_text())
    (version,) = [d[exporter] for d in decisions if d["step"] == step]
    return str(version)


def test_the_doc_dag_does_what_the_page_says_on_the_estimator_model_dir(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    """The page's first run: on a copy of the LinearClassifier's model_dir whose Estimator
    `latest` exports stop at step 125, the sensor passes step 150's evaluation, Latest
    exports checkpoint 150 (train, eval and serve) above the Estimator's versions, and Best
    skips it for the Estimator's better best export; their reasons are the page's, the new
    version computes what the Estimator computed, and the Estimator's exports stay."""
    model_dir = tmp_path / "census"
    shutil.copytree(DATA / LINEAR / "model_dir", model_dir)
    shutil.rmtree(model_dir / "export" / "latest" / estimator_version_of_step("latest", 150))
    estimator_exports = file_digests(model_dir / "export")
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
    waited, best, latest = (results[t] for t in ("wait_for_eval", "export_best", "export_latest"))

    assert waited["step"] == 150
    assert waited["metrics"]["loss"] == pytest.approx(0.6361076831817627, abs=1e-6)
    assert [latest["reason"], best["reason"]] == block_containing(
        "candidate step 150", kind="text"
    ).splitlines()
    assert best["exported"] is False and latest["exported"] is True
    assert latest["global_step"] == 150
    assert latest["checkpoint_path"] == str(model_dir / "model.ckpt-150")
    assert latest["metadata"]["tags"] == ["train", "eval", "serve"]
    assert latest["version"] > int(estimator_version_of_step("latest", 125))
    version_dir = Path(latest["version_uri"])
    assert version_dir.parent == model_dir / "export" / "latest"
    assert_serves_as_the_estimator_did(version_dir)
    assert_evaluates_as_the_estimator_did(version_dir)
    assert {
        path: digest
        for path, digest in file_digests(model_dir / "export").items()
        if not path.startswith(f"latest/{latest['version']}/")
        and not path.endswith("/.airflow-tf-export.lock")
    } == estimator_exports


CENSUS_DATA = """
import numpy as np
import tensorflow as tf


def input_fn(split):
    rng = np.random.RandomState(0 if split == "train" else 1)
    count = 512 if split == "train" else 128
    age = rng.uniform(18.0, 80.0, count).astype(np.float32)
    language = rng.choice(["en", "fr", "de", "es"], count)
    score = (age - 45.0) / 12.0 + np.where(language == "fr", 1.5, -0.3)
    labels = (score + rng.logistic(size=count) > 0).astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices(({"age": age, "language": language}, labels))
    if split == "train":
        dataset = dataset.shuffle(count, seed=2).repeat()
    return dataset.batch(32)
"""


@pytest.mark.skipif(
    TF215_PYTHON is None,
    reason="set TF215_PYTHON to a python with tensorflow-cpu 2.15 and tensorflow-estimator "
    "2.15 (tests/data/estimator/README.md) to run the page's TensorFlow 2.15 code",
)
def test_the_tensorflow_2_15_code_trains_a_model_dir_the_definition_exports(
    project: Path, tmp_path: Path
) -> None:
    """The page's training job, run by TensorFlow 2.15 on a small `census.data.input_fn`,
    leaves the model_dir the page shows; the page's canned definition exports its newest
    checkpoint on TensorFlow 2.21, serving what the Estimator's own newest latest export
    serves."""
    assert TF215_PYTHON is not None
    trainer = tmp_path / "trainer_project"
    (trainer / "census").mkdir(parents=True)
    (trainer / "census" / "__init__.py").write_text("")
    (trainer / "census" / "data.py").write_text(CENSUS_DATA)
    model_dir = tmp_path / "census"
    code = block_containing("train_and_evaluate")
    assert code.count('"gs://my-bucket/models/census"') == 1
    (trainer / "task.py").write_text(
        code.replace('"gs://my-bucket/models/census"', repr(str(model_dir)))
    )
    completed = subprocess.run(
        [TF215_PYTHON, str(trainer / "task.py")],
        capture_output=True,
        text=True,
        cwd=trainer,
        env={**os.environ, "PYTHONPATH": str(trainer), "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert (model_dir / "checkpoint").exists() and (model_dir / "model.ckpt-150.index").exists()
    assert list(model_dir.glob("eval/events.out.tfevents.*"))
    for exporter in ("best", "latest", "final", "all_modes"):
        assert list((model_dir / "export" / exporter).iterdir()), exporter

    from census.definition import classifier

    from airflow_tf_export.savedmodel import resolve_checkpoint, write_saved_model

    export_dir = tmp_path / "ours"
    write_saved_model(classifier, resolve_checkpoint(str(model_dir), None), export_dir)
    newest_latest = max((model_dir / "export" / "latest").iterdir(), key=lambda p: int(p.name))
    ours = run_serving_v1(export_dir, linear_examples())
    theirs = run_serving_v1(newest_latest, linear_examples())
    assert sorted(ours) == sorted(theirs)
    for key, outputs in ours.items():
        for name, value in outputs.items():
            if np.asarray(value).dtype.kind in "SOU":
                assert np.asarray(value).tolist() == np.asarray(theirs[key][name]).tolist()
            else:
                np.testing.assert_allclose(value, theirs[key][name], atol=1e-5)
