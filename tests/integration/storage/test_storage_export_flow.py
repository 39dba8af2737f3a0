"""export_with_strategy end to end on both backends: decide, write, re-decide, publish, retain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from storage_test_models import NOW, Backend, write_model_files

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import Lineage
from airflow_tf_export.core.retention import KeepPinned
from airflow_tf_export.core.strategies import (
    BestStrategy,
    Candidate,
    FinalStrategy,
    LatestStrategy,
)
from airflow_tf_export.storage import WrittenModel
from airflow_tf_export.storage.export_flow import ExportOutcome, export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir


def _candidate(step: int, loss: float | None = None) -> Candidate:
    result = None if loss is None else EvalResult(step, {"loss": loss})
    return Candidate(f"/model/ckpt-{step}", step, result)


def _export(
    exporter: ExporterDir, strategy: object, step: int, loss: float | None = None, **kwargs: object
) -> ExportOutcome:
    return export_with_strategy(
        exporter,
        strategy,  # type: ignore[arg-type]
        _candidate(step, loss),
        lambda directory: write_model_files(directory, step),
        now_seconds=NOW + step,
        **kwargs,  # type: ignore[arg-type]
    )


def test_latest_exports_new_steps_returns_existing_on_retry_and_keeps_n(backend: Backend) -> None:
    exporter = ExporterDir(backend.storage, backend.uri("export", "latest"))
    strategy = LatestStrategy(name="latest", exports_to_keep=2)
    first, second, third = (_export(exporter, strategy, step) for step in (100, 200, 300))
    assert [o.exported for o in (first, second, third)] == [True, True, True]
    assert third.metadata is not None and third.metadata.version == NOW + 300
    assert third.retention.delete_versions == (NOW + 100,)

    retry = _export(exporter, strategy, 300)
    assert not retry.exported
    assert retry.decision.existing_version == NOW + 300
    assert retry.metadata == third.metadata
    assert retry.version_uri == exporter.version_uri(NOW + 300)

    older = _export(exporter, strategy, 150)
    assert not older.exported and "older" in older.decision.reason
    assert [m.version for m in exporter.committed()] == [NOW + 200, NOW + 300]
    json.dumps(retry.to_dict())
    assert retry.to_dict()["existing_version"] == NOW + 300


def test_best_skips_worse_models_also_after_a_restart(backend: Backend) -> None:
    uri = backend.uri("export", "best")
    strategy = BestStrategy(name="best", exports_to_keep=2)
    assert _export(ExporterDir(backend.storage, uri), strategy, 1, loss=0.5).exported
    worse = _export(ExporterDir(backend.storage, uri), strategy, 2, loss=0.6)
    assert not worse.exported
    assert "0.6" in worse.decision.reason and "0.5" in worse.decision.reason
    assert _export(ExporterDir(backend.storage, uri), strategy, 3, loss=0.4).exported
    restarted = ExporterDir(backend.storage, uri)
    tie = _export(restarted, strategy, 4, loss=0.4)
    assert not tie.exported
    committed = restarted.committed()
    assert [(m.global_step, m.eval_result.metrics["loss"]) for m in committed if m.eval_result] == [
        (1, 0.5),
        (3, 0.4),
    ]


def test_retention_keeps_the_best_version_even_when_it_is_not_the_newest(
    backend: Backend,
) -> None:
    exporter = ExporterDir(backend.storage, backend.uri("export", "shared"))
    latest = LatestStrategy(name="shared", exports_to_keep=None)
    _export(exporter, latest, 1, loss=0.1)
    _export(exporter, latest, 2, loss=0.5)
    outcome = _export(exporter, BestStrategy(name="shared", exports_to_keep=1), 3, loss=0.7)
    assert not outcome.exported
    assert outcome.retention.keep_versions == (NOW + 1, NOW + 2)
    assert "current-best" in outcome.retention.explain()
    assert [m.version for m in exporter.committed()] == [NOW + 1, NOW + 2]


def test_explicit_keep_rules_replace_the_strategy_rules(backend: Backend) -> None:
    exporter = ExporterDir(backend.storage, backend.uri("export", "latest"))
    strategy = LatestStrategy(name="latest", exports_to_keep=None)
    for step in (1, 2, 3):
        _export(exporter, strategy, step)
    assert len(exporter.committed()) == 3, "exports_to_keep=None deletes nothing"
    outcome = _export(exporter, strategy, 4, keep_rules=[KeepPinned([NOW + 1])])
    assert outcome.retention.delete_versions == (NOW + 2, NOW + 3)
    assert [m.version for m in exporter.committed()] == [NOW + 1, NOW + 4]


def test_final_exports_once_and_is_idempotent(backend: Backend) -> None:
    exporter = ExporterDir(backend.storage, backend.uri("export", "final"))
    strategy = FinalStrategy(name="final")
    not_final = _export(exporter, strategy, 500)
    assert not not_final.exported and not_final.metadata is None
    final = _export(exporter, strategy, 500, is_the_final_export=True)
    again = _export(exporter, strategy, 500, is_the_final_export=True)
    assert final.exported and not again.exported
    assert again.metadata == final.metadata
    assert len(exporter.committed()) == 1


def test_the_decision_is_taken_again_just_before_publishing(backend: Backend) -> None:
    """A better model published by another exporter while this one was writing wins: the
    slower exporter re-decides on a fresh scan and publishes nothing."""
    uri = backend.uri("export", "best")
    strategy = BestStrategy(name="best")
    _export(ExporterDir(backend.storage, uri), strategy, 1, loss=0.5)

    def slow_writer(directory: Path) -> WrittenModel:
        assert _export(ExporterDir(backend.storage, uri), strategy, 3, loss=0.2).exported
        return write_model_files(directory, 2)

    exporter = ExporterDir(backend.storage, uri)
    outcome = export_with_strategy(
        exporter, strategy, _candidate(2, 0.3), slow_writer, now_seconds=NOW + 2
    )
    assert not outcome.exported
    assert "0.2" in outcome.decision.reason
    state = exporter.scan()
    assert [m.global_step for m in state.committed] == [1, 3]
    assert state.staging == []


def test_published_metadata_records_the_export(backend: Backend) -> None:
    exporter = ExporterDir(backend.storage, backend.uri("export", "best"))
    lineage = Lineage(dag_id="retrain", run_id="manual__1", task_id="export_best", try_number=2)
    outcome = _export(exporter, BestStrategy(name="best"), 7, loss=0.25, lineage=lineage)
    meta = exporter.verify(NOW + 7).metadata
    assert meta == outcome.metadata
    assert (meta.exporter, meta.strategy, meta.global_step) == ("best", "best", 7)
    assert meta.checkpoint_path == "/model/ckpt-7"
    assert meta.eval_result == EvalResult(7, {"loss": 0.25})
    assert meta.lineage == lineage
    assert meta.tags == ("serve",)
    assert meta.signature_keys == {"serve": ("serving_default",)}
    assert meta.created_at == "2027-01-15T08:00:07Z"
    assert meta.reason == outcome.decision.reason
    summary = outcome.to_dict()
    assert summary["exported"] is True
    assert summary["metadata"]["lineage"]["dag_id"] == "retrain"
    assert summary["version_uri"] == exporter.version_uri(NOW + 7)


def test_a_failing_writer_leaves_no_version_and_no_staging(backend: Backend) -> None:
    exporter = ExporterDir(backend.storage, backend.uri("export", "latest"))

    def broken(directory: Path) -> WrittenModel:
        write_model_files(directory, 1)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        export_with_strategy(exporter, LatestStrategy(name="latest"), _candidate(1), broken)
    state = exporter.scan()
    assert (state.committed, state.staging, state.invalid) == ([], [], [])
