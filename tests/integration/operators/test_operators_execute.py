"""The operators' execute() on a real trained model dir, on local disk and the GCS emulator.

Every published version is loaded back with TensorFlow and its serving signature run. The
task instance in the context is a stand-in carrying the lineage fields and `xcom_push` (a
real one needs the Task SDK supervisor); test_operators_dag.py runs the same operators under
`airflow dags test` with real task instances. An export that publishes no version ends as
skipped with its outcome pushed to XCom (`run_task` returns both).
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import AssetAlias
from airflow.sdk.exceptions import AirflowFailException
from operator_support import (
    EVAL_METRICS,
    ModelDir,
    classify,
    load_version,
    run_task,
    task_context,
)

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.operators.compare import CompareOperator
from airflow_tf_export.operators.export import (
    BestExportOperator,
    FinalExportOperator,
    LatestExportOperator,
)
from airflow_tf_export.operators.retention import RetentionOperator
from airflow_tf_export.savedmodel.errors import CheckpointMismatchError
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.local import LocalStorage

DEFINITION = "airflow_tf_export.example.model:definition"


def context(try_number: int = 1, run_id: str = "run-1", task_id: str = "export") -> Any:
    return task_context(run_id=run_id, task_id=task_id, try_number=try_number)


def announced(ctx: Any, alias: str) -> list[dict[str, Any]]:
    """The asset events an execute() added through `alias` (uri and extra)."""
    accessor = ctx["outlet_events"][AssetAlias(alias)]
    return [{"uri": e.dest_asset_key.uri, **e.extra} for e in accessor.asset_alias_events]


def sensor_xcom(step: int) -> dict[str, Any]:
    return EvalResult(step=step, metrics=dict(EVAL_METRICS[step])).to_dict()


def committed(model_dir: ModelDir, name: str) -> list[int]:
    return [
        m.version
        for m in ExporterDir(model_dir.storage, model_dir.join("export", name)).committed()
    ]


def serves(model_dir: ModelDir, version_uri: str) -> None:
    outputs = classify(load_version(model_dir.storage, version_uri), [25, 70], ["german", "x"])
    scores = outputs["scores"].numpy()
    assert scores.shape == (2, 2)
    assert abs(float(scores.sum()) - 2.0) < 1e-4


def test_latest_exports_once_and_a_retry_returns_and_announces_the_same_version(
    model_dir: ModelDir,
) -> None:
    op = LatestExportOperator(
        task_id="export", name="latest", model_definition=DEFINITION, model_dir=model_dir.uri
    )
    first_ctx = context(try_number=1)
    alias = "tf-export:" + model_dir.join("export", "latest")
    state, first = run_task(op, first_ctx)
    assert state == "success"
    assert json.loads(json.dumps(first)) == first
    assert first["exported"] is True and first["skipped"] is False
    assert first["global_step"] == 60
    assert first["checkpoint_path"] == model_dir.join("ckpt-60")
    assert first["uri"] == model_dir.join("export", "latest")
    assert first["new_version"] == first["version"]
    assert first["metadata"]["lineage"] == {
        "dag_id": "dag",
        "run_id": "run-1",
        "task_id": "export",
        "try_number": 1,
        "map_index": -1,
    }
    serves(model_dir, first["version_uri"])
    (event,) = announced(first_ctx, alias)
    assert event["uri"] == first["uri"]
    assert (event["version"], event["global_step"]) == (first["version"], 60)

    # A retry of the same task instance (e.g. after a crash before XCom was pushed).
    retry_ctx = context(try_number=2)
    state, retry = run_task(op, retry_ctx)
    assert (state, retry["exported"]) == ("success", False)
    assert retry["existing_version"] == retry["version"] == first["version"]
    assert retry["new_version"] == first["version"]
    assert [e["version"] for e in announced(retry_ctx, alias)] == [first["version"]]

    # Another run finds the same checkpoint already exported: nothing new to announce, and
    # the task ends as skipped with the outcome in XCom.
    other_ctx = context(run_id="run-2")
    state, other = run_task(op, other_ctx)
    assert state == "skipped"
    assert (other["exported"], other["new_version"]) == (False, None)
    assert other["reason"] == f"already exported as version {first['version']}"
    assert announced(other_ctx, alias) == []
    assert committed(model_dir, "latest") == [first["version"]]


def test_best_exports_only_improvements_and_announces_only_new_versions(
    model_dir: ModelDir,
) -> None:
    results = {}
    for step in (20, 40, 60):
        op = BestExportOperator(
            task_id="export",
            model_definition=DEFINITION,
            model_dir=model_dir.uri,
            eval_result=json.dumps(sensor_xcom(step)),
            asset_alias="best-model",
        )
        ctx = context(run_id=f"run-{step}")
        state, result = run_task(op, ctx)
        results[step] = (state, result, announced(ctx, "best-model"))
    assert [results[step][0] for step in (20, 40, 60)] == ["success", "success", "skipped"]
    (_, r20, e20), (_, r40, e40), (_, r60, e60) = results[20], results[40], results[60]
    assert r20["exported"] and r20["checkpoint_path"] == model_dir.join("ckpt-20")
    assert r20["reason"].startswith("first export")
    assert r40["exported"]
    assert r40["reason"] == (
        f"candidate loss 0.4 is better than best loss 0.6 in version {r20['version']}"
    )
    assert r60["exported"] is False and r60["skipped"] is True
    assert r60["reason"] == (
        f"skipped: candidate loss 0.5 is not better than best loss 0.4 in version {r40['version']}"
    )
    assert r60["version"] is None and r60["new_version"] is None
    assert [e["metrics"] for e in e20 + e40] == [
        pytest.approx(dict(EVAL_METRICS[20])),
        pytest.approx(dict(EVAL_METRICS[40])),
    ]
    assert e60 == []
    assert r60["eval_result"]["metrics"]["loss"] == pytest.approx(0.5)
    assert committed(model_dir, "best_exporter") == [r20["version"], r40["version"]]
    serves(model_dir, r40["version_uri"])


def test_best_reads_the_eval_result_of_the_checkpoint_from_the_event_files(
    model_dir: ModelDir,
) -> None:
    op = BestExportOperator(
        task_id="export",
        name="best_auc",
        model_definition=DEFINITION,
        model_dir=model_dir.uri,
        checkpoint_path="ckpt-40",
        comparison={"metric": "accuracy", "higher_is_better": True},
    )
    result = op.execute(context())
    assert result["exported"] is True
    assert result["global_step"] == 40
    assert result["eval_result"]["metrics"]["accuracy"] == pytest.approx(0.72)
    assert result["eval_result"]["source"].startswith(model_dir.join("eval"))


def test_best_without_the_compared_metric_fails_naming_it(model_dir: ModelDir) -> None:
    op = BestExportOperator(
        task_id="export",
        model_definition=DEFINITION,
        model_dir=model_dir.uri,
        eval_result=sensor_xcom(40),
        comparison={"metric": "auc", "higher_is_better": True},
    )
    with pytest.raises(AirflowFailException, match="no metric 'auc'; it has: accuracy, loss"):
        op.execute(context())
    assert committed(model_dir, "best_exporter") == []


def test_best_with_an_eval_result_of_another_step_fails_naming_both(model_dir: ModelDir) -> None:
    op = BestExportOperator(
        task_id="export",
        model_definition=DEFINITION,
        model_dir=model_dir.uri,
        checkpoint_path=model_dir.join("ckpt-60"),
        eval_result=sensor_xcom(40),
    )
    with pytest.raises(
        AirflowFailException, match=r"step 40 but checkpoint .*ckpt-60.* is step 60"
    ):
        op.execute(context())


def test_final_exports_only_the_final_checkpoint_and_only_once(model_dir: ModelDir) -> None:
    def final(**kwargs: Any) -> FinalExportOperator:
        return FinalExportOperator(
            task_id="export",
            name="final",
            model_definition=DEFINITION,
            model_dir=model_dir.uri,
            max_steps=60,
            **kwargs,
        )

    state, early = run_task(final(checkpoint_path="ckpt-40"), context())
    assert (state, early["exported"]) == ("skipped", False)
    assert early["reason"] == "skipped: not the final export"
    state, done = run_task(final(), context())
    assert state == "success" and done["exported"] and done["global_step"] == 60
    serves(model_dir, done["version_uri"])
    state, again = run_task(final(), context(run_id="rerun"))
    assert state == "skipped"
    assert again["existing_version"] == done["version"] and not again["exported"]
    assert committed(model_dir, "final") == [done["version"]]


def test_multi_mode_export_writes_train_eval_and_serve_into_one_saved_model(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """On local disk only: modes do not depend on the backend (the DAG test exports all
    three modes on GCS too)."""
    shutil.copytree(trained_model_dir, tmp_path / "model")
    model_dir = ModelDir("local", LocalStorage(), str(tmp_path / "model"))
    op = LatestExportOperator(
        task_id="export",
        name="all_modes",
        model_definition=DEFINITION,
        model_dir=model_dir.uri,
        modes=("serve", "eval", "train"),
        as_text=True,
    )
    result = op.execute(context())
    assert result["metadata"]["tags"] == ["train", "eval", "serve"]
    assert result["metadata"]["signature_keys"] == {
        "eval": ["eval"],
        "serve": ["predict", "serving_default"],
        "train": ["train"],
    }
    assert any(e["path"] == "saved_model.pbtxt" for e in result["metadata"]["manifest"])
    serves(model_dir, result["version_uri"])
    for mode in ("train", "eval"):
        loaded = load_version(model_dir.storage, result["version_uri"], tags=mode)
        assert mode in loaded.signatures


def test_compare_gives_the_best_exporters_decision_with_its_reason(model_dir: ModelDir) -> None:
    def compare(step: int) -> dict[str, Any]:
        op = CompareOperator(
            task_id="compare", model_dir=model_dir.uri, eval_result=sensor_xcom(step)
        )
        return op.execute(context())

    first = compare(60)
    assert first["better"] is True and first["best_version"] is None
    assert first["reason"].startswith("first export")
    exported = BestExportOperator(
        task_id="export",
        model_definition=DEFINITION,
        model_dir=model_dir.uri,
        eval_result=sensor_xcom(40),
    ).execute(context())
    worse = compare(60)
    assert json.loads(json.dumps(worse)) == worse
    assert worse["better"] is False
    assert worse["best_version"] == exported["version"]
    assert worse["best_eval_result"]["metrics"]["loss"] == pytest.approx(0.4)
    assert worse["candidate"]["global_step"] == 60
    assert worse["candidate"]["checkpoint_path"] == model_dir.join("ckpt-60")
    assert worse["comparison"] == "loss (lower is better)"
    assert re.match(
        r"skipped: candidate loss 0\.5 is not better than best loss 0\.4", worse["reason"]
    )
    same = compare(40)
    assert same["better"] is False and same["existing_version"] == exported["version"]


def test_retention_thins_exports_and_checkpoints_and_what_remains_loads(
    model_dir: ModelDir,
) -> None:
    versions = []
    for step in (20, 40, 60):
        op = LatestExportOperator(
            task_id="export",
            name="latest",
            model_definition=DEFINITION,
            model_dir=model_dir.uri,
            checkpoint_path=f"ckpt-{step}",
            exports_to_keep=None,
        )
        versions.append(op.execute(context())["version"])
    exporter = model_dir.join("export", "latest")

    def retention(dry_run: bool) -> dict[str, Any]:
        return RetentionOperator(
            task_id="retention",
            exporter_dirs=[exporter],
            keep={"newest": 1, "pinned": [versions[0]]},
            model_dir=model_dir.uri,
            checkpoints_to_keep=1,
            dry_run=dry_run,
        ).execute(context())

    planned = retention(dry_run=True)
    assert committed(model_dir, "latest") == versions
    assert model_dir.storage.exists(model_dir.join("ckpt-40.index"))
    done = retention(dry_run=False)
    assert json.loads(json.dumps(done)) == done
    assert done["exporters"] == planned["exporters"]
    (plan,) = done["exporters"]
    assert [d["version"] for d in plan["delete"]] == [versions[1]]
    assert {k["version"]: k["rule"] for k in plan["keep"]} == {
        versions[0]: "pinned",
        versions[2]: "newest-committed, newest(1)",
    }
    assert committed(model_dir, "latest") == [versions[0], versions[2]]
    checkpoints = done["checkpoints"]
    # ckpt-20 and ckpt-60 were exported by kept versions; ckpt-40's version was deleted.
    assert [d["step"] for d in checkpoints["delete"]] == [40]
    assert {k["step"]: k["rule"] for k in checkpoints["keep"]} == {
        20: "exported",
        60: "newest, state-file, exported",
    }
    names = {e.name for e in model_dir.storage.list_dir(model_dir.uri)}
    assert not any(n.startswith("ckpt-40.") for n in names)
    assert {"ckpt-20.index", "ckpt-60.index"} <= names
    for version in (versions[0], versions[2]):
        serves(model_dir, model_dir.join("export", "latest", str(version)))


def _wider_language_model() -> Any:
    """The example model with a language vocabulary of 7 instead of 4: its variables do not
    match the trained checkpoints."""
    import keras

    age = keras.Input(shape=(), dtype="int64", name="age")
    language = keras.Input(shape=(), dtype="string", name="language")
    scaled_age = keras.layers.Reshape((1,))(keras.layers.Rescaling(0.01)(age))
    one_hot = keras.layers.StringLookup(
        vocabulary=[f"lang{i}" for i in range(7)], output_mode="one_hot", name="language_lookup"
    )(language)
    logit = keras.layers.Add()(
        [
            keras.layers.Dense(1, use_bias=False, name="age_weights")(scaled_age),
            keras.layers.Dense(1, use_bias=False, name="language_weights")(one_hot),
        ]
    )
    probability = keras.layers.Dense(1, activation="sigmoid", name="logistic")(logit)
    return keras.Model({"age": age, "language": language}, probability, name="linear")


def test_a_checkpoint_mismatch_names_the_users_checkpoint_not_the_download(
    model_dir: ModelDir,
) -> None:
    """Issue 18: the error named the temporary local copy (/tmp/tf-export-ckpt-.../ckpt-60)
    that the export restores from, a path the user never saw. (Local disk is restored in
    place now; a GCS checkpoint is still downloaded to /tmp/tf-export-files-...)"""
    from airflow_tf_export.example import model as example

    def wider_definition() -> Any:
        return dataclasses.replace(example.definition, build_model=_wider_language_model)

    op = LatestExportOperator(
        task_id="export", name="latest", model_definition=wider_definition, model_dir=model_dir.uri
    )
    with pytest.raises(AirflowFailException) as raised:
        op.execute(context())
    message = str(raised.value)
    assert f"checkpoint {model_dir.join('ckpt-60')} does not match the model" in message
    assert "checkpoint [5, 1], model [8, 1]" in message  # 4 and 7 words + OOV
    assert "tf-export-files-" not in message
    mismatch = raised.value.__cause__
    assert isinstance(mismatch, CheckpointMismatchError)
    assert mismatch.path == model_dir.join("ckpt-60")
    assert any("language_weights" in m for m in mismatch.mismatched)
    assert committed(model_dir, "latest") == []
