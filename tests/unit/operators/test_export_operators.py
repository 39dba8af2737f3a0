"""Export operators without TensorFlow or a DB: parse-time validation, templating, and the
bad-input failures that execute() raises before any checkpoint is read or model written."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import AssetAlias
from airflow.sdk.exceptions import AirflowFailException

from airflow_tf_export.core.comparison import MetricComparison
from airflow_tf_export.core.strategies import BestStrategy, FinalStrategy, LatestStrategy
from airflow_tf_export.operators.export import (
    BestExportOperator,
    FinalExportOperator,
    LatestExportOperator,
    SavedModelExportOperator,
)

DEFINITION = "airflow_tf_export.example.model:definition"
COMMON: dict[str, Any] = {"model_definition": DEFINITION, "model_dir": "/models/m"}


def final(**kwargs: Any) -> FinalExportOperator:
    return FinalExportOperator(
        **{"task_id": "final", "name": "final", "max_steps": 100, **COMMON, **kwargs}
    )


def latest(**kwargs: Any) -> LatestExportOperator:
    return LatestExportOperator(**{"task_id": "latest", "name": "latest", **COMMON, **kwargs})


def best(**kwargs: Any) -> BestExportOperator:
    return BestExportOperator(**{"task_id": "best", **COMMON, **kwargs})


FACTORIES: list[Callable[..., SavedModelExportOperator]] = [final, latest, best]


@pytest.mark.parametrize("make", FACTORIES)
def test_paths_checkpoint_and_connection_are_templated(make: Callable[..., Any]) -> None:
    op = make()
    for field in ("model_dir", "export_dir_base", "checkpoint_path", "assets_extra", "gcp_conn_id"):
        assert field in op.template_fields


def test_best_also_templates_the_eval_result_and_event_file_pattern() -> None:
    assert {"eval_result", "event_file_pattern"} <= set(BestExportOperator.template_fields)


def test_template_fields_are_assigned_unchanged_and_rendered() -> None:
    op = best(
        model_dir="/models/{{ params.run }}",
        export_dir_base="/exports/{{ params.run }}/best",
        checkpoint_path="{{ params.ckpt }}",
        eval_result="{{ params.eval }}",
        gcp_conn_id="{{ params.conn }}",
        assets_extra={"vocab.txt": "/data/{{ params.run }}/vocab.txt"},
    )
    assert op.model_dir == "/models/{{ params.run }}"
    params = {"run": "r7", "ckpt": "/models/r7/ckpt-9", "eval": "", "conn": "gcp_prod"}
    op.render_template_fields({"params": params})  # type: ignore[arg-type]
    assert op.model_dir == "/models/r7"
    assert op.export_dir_base == "/exports/r7/best"
    assert op.checkpoint_path == "/models/r7/ckpt-9"
    assert op.gcp_conn_id == "gcp_prod"
    assert op.assets_extra == {"vocab.txt": "/data/r7/vocab.txt"}


@pytest.mark.parametrize(
    ("make", "kind"),
    [(final, FinalStrategy), (latest, LatestStrategy), (best, BestStrategy)],
)
def test_each_operator_builds_its_strategy(make: Callable[..., Any], kind: type) -> None:
    assert isinstance(make().strategy, kind)


@pytest.mark.parametrize("make", FACTORIES)
def test_each_operator_announces_through_an_asset_alias(make: Callable[..., Any]) -> None:
    op = make(asset_alias="deploy-me")
    assert op.outlets == [AssetAlias("deploy-me")]
    assert make().outlets == [AssetAlias(f"tf-export:/models/m/export/{make().name}")]


@pytest.mark.parametrize("make", FACTORIES)
def test_two_models_with_exporters_named_alike_get_distinct_default_aliases(
    make: Callable[..., Any],
) -> None:
    """A deploy DAG scheduled on one model's alias must not fire for another model's export
    (issue 18): the default alias names the exporter dir, not the exporter name."""
    ctr = make(model_dir="gs://models-bucket/ctr/")
    ranking = make(model_dir="gs://models-bucket/ranking")
    assert ctr.asset_alias == f"tf-export:gs://models-bucket/ctr/export/{ctr.name}"
    assert ranking.asset_alias == f"tf-export:gs://models-bucket/ranking/export/{ranking.name}"
    moved = make(export_dir_base="file:///serving/ctr//best")
    assert moved.asset_alias == "tf-export:/serving/ctr/best"


def test_a_templated_exporter_dir_gets_its_alias_from_the_text_as_written() -> None:
    """Known at parse time although the URI is rendered only at run time."""
    op = latest(model_dir="gs://bucket/{{ params.model }}")
    assert op.asset_alias == "tf-export:gs://bucket/{{ params.model }}/export/latest"
    other = latest(export_dir_base="{{ params.serving_dir }}")
    assert other.asset_alias == "tf-export:{{ params.serving_dir }}"


@pytest.mark.parametrize("make", [final, latest])
@pytest.mark.parametrize("name", ["../escape", "a/b", "", "123", "temp-x"])
def test_bad_exporter_name_fails_at_parse_time(make: Callable[..., Any], name: str) -> None:
    with pytest.raises(ValueError, match="invalid exporter name") as err:
        make(name=name)
    assert repr(name) in str(err.value)


@pytest.mark.parametrize("make", [latest, best])
@pytest.mark.parametrize("keep", [0, -1, 2.5, True, "5"])
def test_non_positive_exports_to_keep_fails_at_parse_time(
    make: Callable[..., Any], keep: object
) -> None:
    with pytest.raises(ValueError, match="exports_to_keep") as err:
        make(exports_to_keep=keep)
    assert repr(keep) in str(err.value)


def test_exports_to_keep_none_keeps_everything() -> None:
    assert latest(exports_to_keep=None).strategy.exports_to_keep is None


def test_compare_fn_with_wrong_argument_names_fails_at_parse_time() -> None:
    def compare(best: dict[str, float], current: dict[str, float]) -> bool:
        return current["loss"] < best["loss"]

    with pytest.raises(ValueError, match="best_eval_result"):
        best(compare_fn=compare)


def test_compare_fn_and_comparison_together_are_rejected() -> None:
    def compare(best_eval_result: dict[str, float], current_eval_result: dict[str, float]) -> bool:
        return True

    with pytest.raises(ValueError, match="not both"):
        best(compare_fn=compare, comparison={"metric": "auc"})


def test_declared_comparison_replaces_the_default_compare_fn() -> None:
    op = best(comparison={"metric": "auc", "higher_is_better": True, "min_delta": 0.001})
    assert op.strategy.comparator == MetricComparison("auc", True, 0.001)


def test_bad_comparison_spec_fails_at_parse_time() -> None:
    with pytest.raises(ValueError, match="'bigger_is_better'"):
        best(comparison={"metric": "auc", "bigger_is_better": True})


@pytest.mark.parametrize("pattern", ["/abs/*.tfevents.*", "../eval/*", "", "gs://b/eval/*"])
def test_bad_event_file_pattern_fails_naming_it(tmp_path: Path, pattern: str) -> None:
    """The pattern is templated, so it is checked in execute(), before anything is read."""
    op = best(model_dir=str(tmp_path), event_file_pattern=pattern)
    with pytest.raises(AirflowFailException, match="event_file_pattern") as err:
        op.execute({})  # type: ignore[arg-type]
    assert repr(pattern) in str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"is_the_final_export": True, "max_steps": 10}],
    ids=["neither", "both"],
)
def test_final_needs_exactly_one_of_is_the_final_export_or_max_steps(
    kwargs: dict[str, Any],
) -> None:
    with pytest.raises(ValueError, match="exactly one of is_the_final_export or max_steps"):
        FinalExportOperator(task_id="f", name="final", **COMMON, **kwargs)


@pytest.mark.parametrize("max_steps", [0, -5, 2.5, True])
def test_final_rejects_bad_max_steps(max_steps: object) -> None:
    with pytest.raises(ValueError, match="max_steps") as err:
        final(max_steps=max_steps)
    assert repr(max_steps) in str(err.value)


def test_final_derives_the_final_export_from_max_steps_like_train_and_evaluate() -> None:
    op = final(max_steps=100)
    assert [op.final_export(s) for s in (99, 100, 101)] == [False, True, True]
    explicit = FinalExportOperator(task_id="f", name="final", is_the_final_export=True, **COMMON)
    assert explicit.final_export(1)


@pytest.mark.parametrize("modes", [("serve", "predict"), (), "serve", (1,)])
def test_bad_modes_fail_at_parse_time(modes: object) -> None:
    with pytest.raises(ValueError, match="mode"):
        latest(modes=modes)


def test_multi_mode_export_is_accepted() -> None:
    assert latest(modes=("train", "eval", "serve")).modes == ("train", "eval", "serve")


@pytest.mark.parametrize("definition", [None, "", 42])
def test_model_definition_must_be_an_import_string_or_callable(definition: object) -> None:
    with pytest.raises(ValueError, match="model_definition"):
        latest(model_definition=definition)


def test_constructors_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        LatestExportOperator("latest", DEFINITION, "/m", task_id="t")  # type: ignore[misc]


def test_importing_the_operators_does_not_touch_storage(tmp_path: Path) -> None:
    """No I/O in __init__: a model dir that does not exist is fine until execute()."""
    op = latest(model_dir=str(tmp_path / "not-yet"))
    assert not (tmp_path / "not-yet").exists()
    assert op.model_dir == str(tmp_path / "not-yet")


# execute(): bad templated input fails without retry, naming the value.


def test_gcs_uri_without_bucket_fails_naming_it() -> None:
    with pytest.raises(AirflowFailException, match="'gs:///models'"):
        latest(model_dir="gs:///models").execute({})  # type: ignore[arg-type]


def test_relative_model_dir_fails_naming_it() -> None:
    with pytest.raises(AirflowFailException, match="'models/m'"):
        latest(model_dir="models/m").execute({})  # type: ignore[arg-type]


def test_bad_export_dir_base_fails_naming_it(tmp_path: Path) -> None:
    op = latest(model_dir=str(tmp_path), export_dir_base="s3://bucket/export")
    with pytest.raises(AirflowFailException, match="'s3'"):
        op.execute({})  # type: ignore[arg-type]


def test_unknown_connection_id_fails_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_CONN", raising=False)
    op = latest(model_dir="gs://some-bucket/models/m", gcp_conn_id="no_such_conn")
    with pytest.raises(AirflowFailException, match="'no_such_conn'"):
        op.execute({})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "definition",
    ["no_such_package.model:definition", "airflow_tf_export.core:no_such_attr", "not an import"],
)
def test_unknown_model_definition_fails_naming_it(tmp_path: Path, definition: str) -> None:
    op = latest(model_dir=str(tmp_path), model_definition=definition)
    with pytest.raises(AirflowFailException) as err:
        op.execute({})  # type: ignore[arg-type]
    assert repr(definition) in str(err.value)


def test_model_dir_without_checkpoints_fails_naming_the_state_file(tmp_path: Path) -> None:
    with pytest.raises(AirflowFailException, match="no checkpoint in") as err:
        latest(model_dir=str(tmp_path)).execute({})  # type: ignore[arg-type]
    assert os.path.join(str(tmp_path), "checkpoint") in str(err.value)


def test_missing_checkpoint_path_fails_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "ckpt-42")
    op = latest(model_dir=str(tmp_path), checkpoint_path=missing)
    with pytest.raises(AirflowFailException, match="not found") as err:
        op.execute({})  # type: ignore[arg-type]
    assert repr(missing) in str(err.value)


def test_unparseable_eval_result_fails_naming_it(tmp_path: Path) -> None:
    op = best(model_dir=str(tmp_path), eval_result="loss=0.3")
    with pytest.raises(AirflowFailException, match=re.escape("'loss=0.3'")):
        op.execute({})  # type: ignore[arg-type]


# execute(): a local model dir under an executor that may span hosts is worth a warning.


@pytest.mark.parametrize(
    ("executor", "warned"), [("CeleryExecutor", True), ("LocalExecutor", False)]
)
def test_a_local_model_dir_under_a_distributed_executor_logs_a_warning(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    executor: str,
    warned: bool,
) -> None:
    """The warning is logged before anything is read (here the export then fails: the model
    dir has no checkpoint). Operators log through structlog, to stdout here."""
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    with pytest.raises(AirflowFailException, match="no checkpoint in"):
        latest(model_dir=str(tmp_path)).execute({})  # type: ignore[arg-type]
    lines = capsys.readouterr().out.splitlines()
    exporter = str(tmp_path / "export" / "latest")
    matching = [
        line for line in lines if "warning" in line and "fcntl" in line and exporter in line
    ]
    assert bool(matching) is warned, lines


def test_a_gcs_model_dir_under_a_distributed_executor_logs_no_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.delenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", raising=False)
    with pytest.raises(AirflowFailException, match="google_cloud_default"):
        latest(model_dir="gs://bucket/models/m").execute({})  # type: ignore[arg-type]
    assert "fcntl" not in capsys.readouterr().out


# Validation calls the serve and eval signatures: modes writing neither fail at parse time.


def test_validating_a_train_only_export_fails_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape("modes ['train'] write neither")):
        latest(model_dir=str(tmp_path), modes=["train"])
    with pytest.raises(ValueError, match=re.escape("modes ['eval'] write none")):
        latest(model_dir=str(tmp_path), modes=["eval"], warmup_requests=True)
    assert latest(model_dir=str(tmp_path), modes=["train"], validate=False).validate is False
    assert latest(model_dir=str(tmp_path), modes=["train", "eval"]).validate is True
