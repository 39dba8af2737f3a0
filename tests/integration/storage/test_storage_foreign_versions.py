"""Integer version dirs without export_metadata.json on both backends.

A complete SavedModel in `export/<name>/1580000000/` without our metadata (a tf.estimator
export, or one copied in by hand) was not written by this product: every export and every
RetentionOperator run keeps it and reports it as foreign, and it never counts as committed.
(How the strategies count the real Estimator exports: test_storage_estimator_exports.py.)
On GCS, a publish of ours that died before its metadata leaves `<v>/` plus its claim
`temp-claim-<v>`: that one is ours and is cleaned up after the grace period.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from storage_test_models import NOW, Backend, model_file_names, write_model_files

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import METADATA_FILENAME
from airflow_tf_export.core.strategies import (
    BestStrategy,
    Candidate,
    ExportStrategy,
    FinalStrategy,
    LatestStrategy,
)
from airflow_tf_export.operators.retention import RetentionOperator
from airflow_tf_export.storage.export_flow import ExportOutcome, export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.gcs import GcsStorage

ESTIMATOR_VERSION = 1_580_000_000
MONTH = 30 * 86400
GCS_CONNECTION = (
    '{"conn_type": "google_cloud_platform", '
    '"extra": {"is_anonymous": true, "project": "test-project"}}'
)


def _estimator_export(backend: Backend, exporter_uri: str) -> dict[str, int]:
    """A complete SavedModel as tf.estimator wrote it (no metadata); its files and sizes."""
    for name in model_file_names():
        data = f"{name} of the estimator model\n".encode()
        backend.storage.write_bytes(
            backend.storage.join(exporter_uri, str(ESTIMATOR_VERSION), name), data
        )
    return _files(backend, backend.storage.join(exporter_uri, str(ESTIMATOR_VERSION)))


def _files(backend: Backend, uri: str) -> dict[str, int]:
    return {e.name: e.size for e in backend.storage.list_files(uri)}


def _export(
    exporter: ExporterDir, strategy: ExportStrategy, step: int, *, final: bool, now: int
) -> ExportOutcome:
    return export_with_strategy(
        exporter,
        strategy,
        Candidate(f"/model/ckpt-{step}", step, EvalResult(step, {"loss": 1.0 / step})),
        lambda directory: write_model_files(directory, step),
        is_the_final_export=final,
        now_seconds=now,
    )


STRATEGIES: dict[str, tuple[ExportStrategy, bool]] = {
    "final-not-final-yet": (FinalStrategy(name="final"), False),
    "final": (FinalStrategy(name="final"), True),
    "latest-keep-all": (LatestStrategy(name="latest", exports_to_keep=None), False),
    "latest-keep-1": (LatestStrategy(name="latest", exports_to_keep=1), False),
    "best-keep-1": (BestStrategy(name="best", exports_to_keep=1), False),
}


@pytest.mark.parametrize("case", list(STRATEGIES))
def test_a_foreign_version_survives_every_export_and_is_never_committed(
    backend: Backend, case: str
) -> None:
    strategy, final = STRATEGIES[case]
    exporter_uri = backend.uri("model", "export", strategy.name)
    files = _estimator_export(backend, exporter_uri)
    exporter = ExporterDir(backend.storage, exporter_uri)
    # A month from now: the foreign dir is far older than any grace period.
    later = int(time.time()) + MONTH
    outcomes = [_export(exporter, strategy, step, final=final, now=later + step) for step in (1, 2)]

    for outcome in outcomes:
        assert outcome.retention.foreign == (str(ESTIMATOR_VERSION),)
        assert outcome.to_dict()["retention"]["foreign"] == [ESTIMATOR_VERSION]
        assert f"{ESTIMATOR_VERSION} keep foreign: no {METADATA_FILENAME}" in (
            outcome.retention.explain()
        )
        assert ESTIMATOR_VERSION not in outcome.retention.delete_versions
        assert outcome.decision.existing_version != ESTIMATOR_VERSION
    assert _files(backend, exporter.version_uri(ESTIMATOR_VERSION)) == files
    state = exporter.scan(now_seconds=later)
    assert state.foreign == [ESTIMATOR_VERSION]
    assert ESTIMATOR_VERSION not in [m.version for m in state.committed]
    published = [o.metadata.version for o in outcomes if o.exported and o.metadata]
    if case == "final-not-final-yet":
        assert published == [] and state.committed == []
    else:
        # Its files are not a readable SavedModel, so its global step is unknown: it is
        # ignored (and named) and the first candidate is published as into an empty dir.
        assert outcomes[0].exported
        (foreign,) = outcomes[0].foreign
        assert foreign.global_step is None
        assert "is not an SSTable: its footer ends in" in str(foreign.unreadable)
        assert (
            f"(ignored foreign versions: {ESTIMATOR_VERSION} (global step unreadable: "
            f"{foreign.unreadable}))" in outcomes[0].decision.reason
        )
        assert [m.version for m in state.committed] == (
            published if strategy.exports_to_keep is None else published[-1:]
        )


def test_retention_operator_keeps_and_reports_a_foreign_version(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", GCS_CONNECTION)
    exporter_uri = backend.uri("model", "export", "latest")
    files = _estimator_export(backend, exporter_uri)
    ours = [backend.publish(exporter_uri, step, now=NOW + step).version for step in (1, 2, 3)]
    result = _retention(exporter_uri, staging_grace_seconds=0)

    (plan,) = result["exporters"]
    assert plan["foreign"] == [ESTIMATOR_VERSION]
    (foreign,) = plan["foreign_versions"]
    assert (foreign["version"], foreign["global_step"]) == (ESTIMATOR_VERSION, None)
    assert "is not an SSTable" in foreign["unreadable"]
    assert [d["version"] for d in plan["delete"]] == ours[:2]
    assert [k["version"] for k in plan["keep"]] == ours[2:]
    assert plan["staging_delete"] == []
    assert f"{ESTIMATOR_VERSION} keep foreign" in plan["explain"]
    assert _files(backend, backend.storage.join(exporter_uri, str(ESTIMATOR_VERSION))) == files
    assert [m.version for m in ExporterDir(backend.storage, exporter_uri).committed()] == ours[2:]


def _retention(exporter_uri: str, **kwargs: Any) -> dict[str, Any]:
    operator = RetentionOperator(
        task_id="retention", exporter_dirs=[exporter_uri], keep={"newest": 1}, **kwargs
    )
    return operator.execute({})  # type: ignore[arg-type]


# ---- GCS: an abandoned publish of ours (claim present, no metadata) -------------------------


def _abandoned_publish(storage: GcsStorage, exporter_uri: str, monkeypatch: Any) -> int:
    """Run a real publish that dies just before uploading its metadata; its version."""
    create_object = storage._create_object

    def dying_before_the_metadata(target: Any, data: bytes, content_type: str) -> bool:
        if target.path.endswith(METADATA_FILENAME):
            raise RuntimeError("the worker died")
        return create_object(target, data, content_type)

    monkeypatch.setattr(storage, "_create_object", dying_before_the_metadata)
    backend = Backend("gcs", storage, exporter_uri)
    with pytest.raises(RuntimeError, match="the worker died"):
        backend.publish(exporter_uri, step=1, now=NOW)
    monkeypatch.undo()
    assert storage.exists(storage.join(exporter_uri, f"temp-claim-{NOW}"))
    assert storage.exists(storage.join(exporter_uri, str(NOW), "saved_model.pb"))
    return NOW


@pytest.fixture
def gcs_backend(gcs_bucket: tuple[Any, str]) -> Backend:
    client, bucket = gcs_bucket
    return Backend("gcs", GcsStorage(client), f"gs://{bucket}/model")


def _estimator_and_abandoned_gcs_exports(
    gcs_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> tuple[GcsStorage, str, dict[str, int], int]:
    """An exporter dir holding a tf.estimator export and one of our publishes that died
    before its metadata: the storage, the dir, the estimator export's files, our version."""
    storage = gcs_backend.storage
    assert isinstance(storage, GcsStorage)
    exporter_uri = gcs_backend.uri("export", "latest")
    files = _estimator_export(gcs_backend, exporter_uri)
    return storage, exporter_uri, files, _abandoned_publish(storage, exporter_uri, monkeypatch)


def test_an_abandoned_gcs_publish_is_cleaned_up_after_the_grace_period_by_an_export(
    gcs_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, exporter_uri, files, version = _estimator_and_abandoned_gcs_exports(
        gcs_backend, monkeypatch
    )
    claim = f"temp-claim-{version}"
    exporter = ExporterDir(storage, exporter_uri)
    strategy = LatestStrategy(name="latest", exports_to_keep=None)

    young = _export(exporter, strategy, 2, final=False, now=int(time.time()))
    assert young.retention.staging_keep == (str(version), claim)
    assert young.retention.foreign == (str(ESTIMATOR_VERSION),)
    assert storage.exists(storage.join(exporter_uri, str(version), "saved_model.pb"))

    old = _export(exporter, strategy, 3, final=False, now=int(time.time()) + 7200)
    assert old.retention.staging_delete == (str(version),)
    assert old.retention.claim_delete == (claim,)
    assert f"{version} delete: unfinished publish or delete of ours" in old.retention.explain()
    names = {e.name for e in storage.list_dir(exporter_uri)}
    assert str(version) not in names and claim not in names
    assert _files(gcs_backend, storage.join(exporter_uri, str(ESTIMATOR_VERSION))) == files
    assert exporter.scan().foreign == [ESTIMATOR_VERSION]


def test_an_abandoned_gcs_publish_is_cleaned_up_by_the_retention_operator(
    gcs_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, exporter_uri, files, version = _estimator_and_abandoned_gcs_exports(
        gcs_backend, monkeypatch
    )
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", GCS_CONNECTION)

    within = _retention(exporter_uri)["exporters"][0]
    assert within["staging_keep"] == [str(version), f"temp-claim-{version}"]
    assert within["staging_delete"] == []
    time.sleep(0.05)
    (plan,) = _retention(exporter_uri, staging_grace_seconds=0)["exporters"]
    assert plan["staging_delete"] == [str(version), f"temp-claim-{version}"]
    assert plan["foreign"] == [ESTIMATOR_VERSION]
    assert {e.name for e in storage.list_dir(exporter_uri)} == {str(ESTIMATOR_VERSION)}
    assert _files(gcs_backend, storage.join(exporter_uri, str(ESTIMATOR_VERSION))) == files
