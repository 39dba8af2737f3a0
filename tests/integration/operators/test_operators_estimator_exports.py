"""The export and compare operators on a model dir migrated from tf.estimator, whose exporter
dirs already hold the Estimator's own exports (no export_metadata.json).

Real: a copy (local disk, or the GCS emulator over HTTP) of the genuine model dir in
tests/data/estimator/linear_classifier, written by TensorFlow 2.15.1's Estimator: its TF1
checkpoints, its `export/{best,latest,final}/<timestamp>/` SavedModels (the global steps are
read from their variables) and its eval event files (the foreign versions' losses come from
there). For the real export, the example Keras model is trained with TensorFlow 2.21 to
`ckpt-175`, its evaluation is written with tf.summary, and the published SavedModel is loaded
back and run. Stand-ins: the Estimator-compatible model definitions do not exist yet, so the
skip tests use a definition whose build_model fails the test if an export is attempted; the
task instance in the context is a stand-in, as in test_operators_execute.py. The last test
runs the skipping operators in a real DAG run instead (`airflow dags test` against a SQLite
metadata DB): they end as skipped, and their XComs are read back from the DB.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest
from airflow.sdk import AssetAlias
from operator_support import (
    ModelDir,
    classify,
    copy_model_dir,
    load_version,
    run_task,
    task_context,
    write_eval_events,
)

from airflow_tf_export.example import model as example
from airflow_tf_export.example.train import train
from airflow_tf_export.operators.compare import CompareOperator
from airflow_tf_export.operators.export import (
    BestExportOperator,
    FinalExportOperator,
    LatestExportOperator,
)
from airflow_tf_export.savedmodel import ModelDefinition
from airflow_tf_export.storage.exporter_dir import ExporterDir

ESTIMATOR_MODEL_DIR = (
    Path(__file__).resolve().parents[2] / "data" / "estimator" / "linear_classifier" / "model_dir"
)
NOT_OURS = "not written by airflow-tf-export"
# tests/data/estimator/linear_classifier/reference/decisions.json
BEST_100, BEST_125 = 1_796_476_015, 1_796_476_018  # loss 0.5789 and 0.5816 (after a restart)
LATEST_125, LATEST_150 = 1_796_476_018, 1_796_476_021
FINAL_150 = 1_796_476_021
NEW_STEP, NEW_LOSS = 175, 0.55


def build_model_must_not_run() -> NoReturn:
    raise AssertionError("the decision was to skip: no SavedModel may be written")


def skip_only_definition() -> ModelDefinition:
    """The example definition whose build_model fails: any export attempt fails the test."""
    return dataclasses.replace(example.definition, build_model=build_model_must_not_run)


@pytest.fixture(scope="session")
def migrated_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Estimator's model dir, continued: `ckpt-175` of the example model (trained in a
    separate dir, so the Estimator's `checkpoint` state file stays as it was) and an eval
    event file with its loss, better than every evaluation the Estimator made."""
    model_dir = tmp_path_factory.mktemp("migrated") / "model_dir"
    shutil.copytree(ESTIMATOR_MODEL_DIR, model_dir)
    training = tmp_path_factory.mktemp("example-training")
    train(model_dir=str(training), steps=NEW_STEP, batch_size=32)
    for path in training.glob(f"ckpt-{NEW_STEP}.*"):
        shutil.copy2(path, model_dir / path.name)
    write_eval_events(model_dir, {NEW_STEP: {"loss": NEW_LOSS}})
    return model_dir


@pytest.fixture(params=["local", "gcs"])
def model_dir(
    request: pytest.FixtureRequest,
    migrated_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> ModelDir:
    return copy_model_dir(request, migrated_model_dir, tmp_path, monkeypatch)


def announced(ctx: Any, alias: str) -> list[Any]:
    return list(ctx["outlet_events"][AssetAlias(alias)].asset_alias_events)


def exporter_files(model_dir: ModelDir, name: str) -> dict[str, int]:
    uri = model_dir.join("export", name)
    return {e.name: e.size for e in model_dir.storage.list_files(uri)}


def run(operator: Any, model_dir: ModelDir, name: str) -> tuple[dict[str, Any], Any]:
    """Execute; check the Estimator's exports are untouched and that the task ends as
    skipped exactly when it published nothing; the XCom value and context."""
    before = exporter_files(model_dir, name)
    ctx = task_context()
    state, result = run_task(operator, ctx)
    assert state == ("success" if result["new_version"] else "skipped")
    assert json.loads(json.dumps(result)) == result
    after = exporter_files(model_dir, name)
    assert {k: v for k, v in after.items() if k in before} == before
    return result, ctx


def test_best_skips_a_checkpoint_worse_than_the_estimator_best_export(model_dir: ModelDir) -> None:
    operator = BestExportOperator(
        task_id="export",
        name="best",
        model_definition=skip_only_definition,
        model_dir=model_dir.uri,
    )
    result, ctx = run(operator, model_dir, "best")
    assert (result["exported"], result["skipped"], result["global_step"]) == (False, True, 150)
    assert result["checkpoint_path"] == model_dir.join("model.ckpt-150")
    assert result["reason"] == (
        "skipped: candidate loss 0.636108 is not better than best loss 0.5789 in foreign "
        f"version {BEST_100} (step 100, {NOT_OURS})"
    )
    considered = {f["version"]: f for f in result["foreign_versions"]}
    assert sorted(considered) == [BEST_100, BEST_125]
    assert considered[BEST_100]["global_step"] == 100
    assert considered[BEST_125]["global_step"] == 125
    assert considered[BEST_100]["eval_result"]["metrics"]["loss"] == pytest.approx(0.5789001)
    assert considered[BEST_125]["eval_result"]["metrics"]["loss"] == pytest.approx(0.5816275)
    assert result["retention"]["foreign"] == [BEST_100, BEST_125]
    assert result["new_version"] is None and announced(ctx, f"tf-export:{result['uri']}") == []
    assert ExporterDir(model_dir.storage, model_dir.join("export", "best")).committed() == []


def test_best_skips_the_step_the_estimator_exported_after_its_restart(
    model_dir: ModelDir,
) -> None:
    """tensorflow/tensorflow#47396: the restarted Estimator exported step 125 although it
    was worse than step 100; that version is counted, and its step is not exported again."""
    operator = BestExportOperator(
        task_id="export",
        name="best",
        model_definition=skip_only_definition,
        model_dir=model_dir.uri,
        checkpoint_path=model_dir.join("model.ckpt-125"),
    )
    result, _ctx = run(operator, model_dir, "best")
    assert not result["exported"]
    assert result["reason"] == (
        f"skipped: step 125 is already exported as foreign version {BEST_125} (step 125, "
        f"{NOT_OURS})"
    )


@pytest.mark.parametrize(("step", "holder"), [(150, LATEST_150), (125, LATEST_125)])
def test_latest_skips_checkpoints_whose_step_the_estimator_exported(
    model_dir: ModelDir, step: int, holder: int
) -> None:
    operator = LatestExportOperator(
        task_id="export",
        name="latest",
        model_definition=skip_only_definition,
        model_dir=model_dir.uri,
        checkpoint_path=model_dir.join(f"model.ckpt-{step}"),
    )
    result, _ctx = run(operator, model_dir, "latest")
    assert (result["exported"], result["skipped"]) == (False, True)
    assert result["reason"] == (
        f"skipped: step {step} is already exported as foreign version {holder} "
        f"(step {step}, {NOT_OURS})"
    )
    # Latest needs steps only: the event files are not read for it.
    assert [
        (f["version"], f["global_step"], f["eval_result"]) for f in result["foreign_versions"]
    ] == [
        (LATEST_125, 125, None),
        (LATEST_150, 150, None),
    ]


def test_final_treats_the_estimator_final_export_as_its_own(model_dir: ModelDir) -> None:
    operator = FinalExportOperator(
        task_id="export",
        name="final",
        model_definition=skip_only_definition,
        model_dir=model_dir.uri,
        max_steps=150,
    )
    result, _ctx = run(operator, model_dir, "final")
    assert not result["exported"]
    assert result["reason"] == (
        f"skipped: final export already exists as foreign version {FINAL_150} (step 150, "
        f"{NOT_OURS}); candidate step 150 is not newer"
    )


def test_compare_gives_the_decision_best_would_take(model_dir: ModelDir) -> None:
    result = CompareOperator(task_id="compare", name="best", model_dir=model_dir.uri).compare()
    assert result["better"] is False
    assert result["reason"] == (
        "skipped: candidate loss 0.636108 is not better than best loss 0.5789 in foreign "
        f"version {BEST_100} (step 100, {NOT_OURS})"
    )
    assert [f["global_step"] for f in result["foreign_versions"]] == [100, 125]


def test_best_exports_a_checkpoint_better_than_every_estimator_export(model_dir: ModelDir) -> None:
    operator = BestExportOperator(
        task_id="export",
        name="best",
        model_definition="airflow_tf_export.example.model:definition",
        model_dir=model_dir.uri,
        checkpoint_path=model_dir.join(f"ckpt-{NEW_STEP}"),
    )
    result, ctx = run(operator, model_dir, "best")
    assert result["exported"] is True and result["global_step"] == NEW_STEP
    assert result["reason"] == (
        f"candidate loss {NEW_LOSS} is better than best loss 0.5789 in foreign version "
        f"{BEST_100} (step 100, {NOT_OURS})"
    )
    assert result["new_version"] > BEST_125, "numbered above every foreign version"
    assert [e.extra["version"] for e in announced(ctx, f"tf-export:{result['uri']}")] == [
        result["new_version"]
    ]
    outputs = classify(load_version(model_dir.storage, result["version_uri"]), [25], ["german"])
    assert outputs["scores"].shape == (1, 2)
    state = ExporterDir(model_dir.storage, model_dir.join("export", "best")).scan()
    assert [m.version for m in state.committed] == [result["new_version"]]
    assert [f.version for f in state.foreign_versions] == [BEST_100, BEST_125]


def test_the_skipping_exports_in_a_real_dag_run(
    migrated_model_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).parent / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    model_dir = tmp_path / "model_dir"
    shutil.copytree(migrated_model_dir, model_dir)
    dag_id = "tf_export_estimator_dir"
    conf = json.dumps({"model_dir": str(model_dir)})
    run = subprocess.run(
        [airflow, "dags", "test", dag_id, "2026-03-01", "--conf", conf],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    with sqlite3.connect(home / "airflow.db") as db:
        states = dict(
            db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (dag_id,))
        )
        xcoms = {
            task: json.loads(value)
            for task, value in db.execute(
                "SELECT task_id, value FROM xcom WHERE dag_id = ? AND key = 'return_value'",
                (dag_id,),
            )
        }
    tasks = ("compare", "export_best", "export_latest", "export_final")
    # Nothing exported: the export tasks show as skipped, their outcome still in XCom.
    assert states == {"compare": "success", **dict.fromkeys(tasks[1:], "skipped")}
    foreign_100 = f"foreign version {BEST_100} (step 100, {NOT_OURS})"
    assert (
        xcoms["compare"]["reason"]
        == xcoms["export_best"]["reason"]
        == (
            f"skipped: candidate loss 0.636108 is not better than best loss 0.5789 in {foreign_100}"
        )
    )
    assert xcoms["export_latest"]["reason"] == (
        f"skipped: step 150 is already exported as foreign version {LATEST_150} (step 150, "
        f"{NOT_OURS})"
    )
    assert xcoms["export_final"]["reason"].startswith(
        f"skipped: final export already exists as foreign version {FINAL_150} (step 150,"
    )
    steps = {task: [f["global_step"] for f in xcoms[task]["foreign_versions"]] for task in tasks}
    assert steps == {
        "compare": [100, 125],
        "export_best": [100, 125],
        "export_latest": [125, 150],
        "export_final": [150],
    }
    for name in ("best", "latest", "final"):
        exported = sorted(p.name for p in (model_dir / "export" / name).iterdir())
        estimator = sorted(p.name for p in (ESTIMATOR_MODEL_DIR / "export" / name).iterdir())
        assert [n for n in exported if n.isdigit()] == estimator, "nothing published or deleted"
