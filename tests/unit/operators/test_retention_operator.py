"""RetentionOperator on local disk, DB-free and without TensorFlow.

Versions are published through the real LocalStorage publish path; their files are
SavedModel-shaped plain bytes, since retention reads only the committed metadata (loading
real SavedModels after retention is covered in tests/integration/operators).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from events.event_builders import simple_value_event, write_events

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.operators.retention import RetentionOperator
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.local import LocalStorage

NOW = 1_800_000_000
AUC = {100: 0.70, 200: 0.95, 300: 0.80, 400: 0.60, 500: 0.75}


def publish(exporter_uri: str, step: int, auc: float) -> int:
    storage = LocalStorage()
    with storage.staging_dir(exporter_uri) as staging:
        (staging / "variables").mkdir()
        (staging / "variables" / "variables.index").write_bytes(f"index {step}".encode())
        (staging / "saved_model.pb").write_bytes(f"graph {step}".encode())
        meta = ExportMetadata(
            exporter="best",
            strategy="best",
            version=0,
            checkpoint_path=f"/m/ckpt-{step}",
            global_step=step,
            created_at="2027-01-15T08:00:00Z",
            eval_result=EvalResult(step=step, metrics={"auc": auc, "loss": 1 - auc}),
        )
        return storage.publish_version(staging, exporter_uri, meta, now_seconds=NOW + step).version


@pytest.fixture
def exporter(tmp_path: Path) -> str:
    uri = str(tmp_path / "export" / "best")
    for step, auc in AUC.items():
        publish(uri, step, auc)
    return uri


def versions(uri: str) -> list[int]:
    return [m.version for m in ExporterDir(LocalStorage(), uri).committed()]


def retention(**kwargs: Any) -> RetentionOperator:
    return RetentionOperator(task_id="retention", **kwargs)


KEEP = {"newest": 1, "best": {"n": 2, "metric": "auc", "higher_is_better": True}}


def test_dry_run_reports_the_plan_and_deletes_nothing(exporter: str) -> None:
    before = versions(exporter)
    result = retention(exporter_dirs=[exporter], keep=KEEP, dry_run=True).execute({})  # type: ignore[arg-type]
    assert versions(exporter) == before
    json.dumps(result)
    (plan,) = result["exporters"]
    kept = {item["version"]: item["rule"] for item in plan["keep"]}
    # newest: step 500; best two by auc: steps 200 (0.95) and 300 (0.80).
    assert kept == {
        NOW + 200: "current-best, best(2)",
        NOW + 300: "best(2)",
        NOW + 500: "newest-committed, newest(1)",
    }
    assert [d["version"] for d in plan["delete"]] == [NOW + 100, NOW + 400]
    assert result["dry_run"] is True
    assert result["checkpoints"] is None
    assert f"{NOW + 100} delete: matched no keep rule" in plan["explain"]


def test_retention_deletes_exactly_what_the_plan_says(exporter: str) -> None:
    result = retention(exporter_dirs=[exporter], keep=KEEP).execute({})  # type: ignore[arg-type]
    assert versions(exporter) == [NOW + 200, NOW + 300, NOW + 500]
    assert result["dry_run"] is False
    again = retention(exporter_dirs=[exporter], keep=KEEP).execute({})  # type: ignore[arg-type]
    assert again["exporters"][0]["delete"] == []


def test_the_current_best_is_protected_even_without_a_best_rule(exporter: str) -> None:
    keep = {"newest": 1, "best": {"n": 1, "metric": "auc", "higher_is_better": True}}
    retention(exporter_dirs=[exporter], keep={"newest": 1}).execute({})  # type: ignore[arg-type]
    # Without a "best" rule the protected best is by loss (lower is better): step 200.
    assert versions(exporter) == [NOW + 200, NOW + 500]
    retention(exporter_dirs=[exporter], keep=keep).execute({})  # type: ignore[arg-type]
    assert versions(exporter) == [NOW + 200, NOW + 500]


def test_pinned_every_steps_and_abandoned_staging(exporter: str) -> None:
    abandoned = f"temp-airflow-tf-export-{'a' * 32}"
    staging = Path(exporter) / abandoned
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"half written")
    keep = {"newest": 1, "pinned": [NOW + 100], "every_steps": 1000}
    result = retention(exporter_dirs=[exporter], keep=keep, staging_grace_seconds=0).execute({})  # type: ignore[arg-type]
    assert not staging.exists()
    assert result["exporters"][0]["staging_delete"] == [abandoned]
    assert NOW + 100 in versions(exporter)


@pytest.mark.parametrize("grace", [-1, float("nan"), "0", True])
def test_a_bad_grace_period_is_refused_when_the_task_is_built(grace: object) -> None:
    with pytest.raises(ValueError, match="staging_grace_seconds must be a number >= 0, got"):
        retention(exporter_dirs=["/m/export/best"], keep=KEEP, staging_grace_seconds=grace)


def test_a_state_file_that_cannot_be_pruned_stops_retention_before_anything_is_deleted(
    tmp_path: Path,
) -> None:
    for step in (10, 20, 30):
        (tmp_path / f"ckpt-{step}.index").write_bytes(b"i")
    state = (
        'model_checkpoint_path: "ckpt-30"\n'
        'all_model_checkpoint_paths: "ckpt-10"\n'
        'all_model_checkpoint_paths: "ckpt-30"\n'
        "all_model_checkpoint_timestamps: 1795200000.0\n"
    )
    write_events(
        tmp_path / "eval" / "events.out.tfevents.1.host",
        [simple_value_event(30, {"loss": 0.5})],
    )
    # With the timestamp line left out, the same model dir would lose ckpt-10 and ckpt-20.
    (tmp_path / "checkpoint").write_text(state.rsplit("all_model", 1)[0])
    op = retention(model_dir=str(tmp_path), checkpoints_to_keep=1, dry_run=True)
    planned = op.execute({})["checkpoints"]  # type: ignore[arg-type]
    assert [d["step"] for d in planned["delete"]] == [10, 20]
    (tmp_path / "checkpoint").write_text(state)
    op = retention(model_dir=str(tmp_path), checkpoints_to_keep=1)
    with pytest.raises(AirflowFailException, match="so no checkpoint is deleted") as raised:
        op.execute({})  # type: ignore[arg-type]
    assert "1 all_model_checkpoint_timestamps for 2 all_model_checkpoint_paths" in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint",
        "ckpt-10.index",
        "ckpt-20.index",
        "ckpt-30.index",
        "eval",
    ]
    assert (tmp_path / "checkpoint").read_text() == state


def test_checkpoints_are_all_kept_until_something_was_evaluated(tmp_path: Path) -> None:
    for step in (10, 20, 30):
        (tmp_path / f"ckpt-{step}.index").write_bytes(b"i")
        (tmp_path / f"ckpt-{step}.data-00000-of-00001").write_bytes(b"d")
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-30"\n')
    result = retention(model_dir=str(tmp_path), checkpoints_to_keep=1).execute({})  # type: ignore[arg-type]
    plan = result["checkpoints"]
    assert [k["step"] for k in plan["keep"]] == [10, 20, 30]
    assert plan["delete"] == []
    assert "no checkpoint has been evaluated yet" in plan["explain"]
    assert (tmp_path / "ckpt-10.index").exists()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "nothing to retain"),
        ({"exporter_dirs": ["/e/best"]}, "need keep rules"),
        ({"exporter_dirs": "/e/best", "keep": {"newest": 1}}, "list of URIs"),
        ({"model_dir": "/m"}, "together"),
        ({"model_dir": "/m", "checkpoints_to_keep": 0}, "checkpoints_to_keep"),
        ({"exporter_dirs": ["/e"], "keep": {"newest": -1}}, "-1"),
        ({"exporter_dirs": ["/e"], "keep": {"latest": 1}}, "'latest'"),
        ({"model_dir": "/m", "checkpoints_to_keep": 2, "dry_run": "yes"}, "dry_run"),
        (
            {"exporter_dirs": ["/e"], "keep": {"newest": 1}, "checkpoint_prefix": "ckpt"},
            "checkpoint_prefix 'ckpt' names checkpoints of a model dir: give model_dir",
        ),
        ({"model_dir": "/m", "checkpoints_to_keep": 2, "checkpoint_prefix": ""}, "got ''"),
        ({"model_dir": "/m", "checkpoints_to_keep": 2, "checkpoint_prefix": "a/ckpt"}, "a/ckpt"),
        ({"model_dir": "/m", "checkpoints_to_keep": 2, "checkpoint_prefix": ".."}, "'..'"),
        ({"model_dir": "/m", "checkpoints_to_keep": 2, "checkpoint_prefix": 5}, "got 5"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        retention(**kwargs)


def test_exporter_dirs_and_model_dir_are_templated() -> None:
    assert set(RetentionOperator.template_fields) >= {"exporter_dirs", "model_dir", "gcp_conn_id"}


@pytest.mark.parametrize("uri", ["gs:///no-bucket/export/best", "relative/export"])
def test_bad_exporter_dir_uri_fails_naming_it(uri: str) -> None:
    op = retention(exporter_dirs=[uri], keep={"newest": 1})
    with pytest.raises(AirflowFailException, match=uri):
        op.execute({})  # type: ignore[arg-type]
