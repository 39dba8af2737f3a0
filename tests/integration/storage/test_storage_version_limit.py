"""TF Serving's version numbers are int64: on both backends, a directory numbered beyond
2**63-1 is kept and reported as foreign and never numbered after, and an export that could
only publish an unservable version fails, naming why, and changes nothing."""

from __future__ import annotations

import json

import pytest
from storage_test_models import NOW, Backend, model_file_names, write_model_files

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import METADATA_FILENAME
from airflow_tf_export.core.strategies import Candidate, LatestStrategy
from airflow_tf_export.core.versions import MAX_VERSION, VersionRangeError
from airflow_tf_export.storage.base import EXPORTER_LOCK_NAME
from airflow_tf_export.storage.export_flow import ExportOutcome, export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir

FOREIGN_BEYOND = "99999999999999999999"
# What an export next to FOREIGN_BEYOND published before the limit existed (with our metadata).
PUBLISHED_BEYOND = "100000000000000000000"


def _write_dir(backend: Backend, uri: str, metadata: bytes | None = None) -> None:
    for name in model_file_names(shards=1):
        backend.storage.write_bytes(backend.storage.join(uri, name), f"{name}\n".encode())
    if metadata is not None:
        backend.storage.write_bytes(backend.storage.join(uri, METADATA_FILENAME), metadata)


def _files(backend: Backend, uri: str) -> dict[str, int]:
    return {e.name: e.size for e in backend.storage.list_files(uri) if e.name != EXPORTER_LOCK_NAME}


def _export(exporter: ExporterDir, step: int) -> ExportOutcome:
    return export_with_strategy(
        exporter,
        LatestStrategy(name="latest", exports_to_keep=1),
        Candidate(f"/model/ckpt-{step}", step, EvalResult(step, {"loss": 1.0 / step})),
        lambda directory: write_model_files(directory, step, shards=1),
        now_seconds=NOW + step,
        staging_grace_seconds=0,
    )


def test_a_dir_beyond_int64_is_foreign_kept_and_never_numbered_after(backend: Backend) -> None:
    exporter_uri = backend.uri("export", "latest")
    exporter = ExporterDir(backend.storage, exporter_uri)
    _write_dir(backend, backend.storage.join(exporter_uri, FOREIGN_BEYOND))
    ours = backend.publish(exporter_uri, step=1)
    metadata = json.loads(
        backend.storage.read_bytes(
            backend.storage.join(exporter.version_uri(ours.version), METADATA_FILENAME)
        )
    )
    metadata["version"] = int(PUBLISHED_BEYOND)
    _write_dir(
        backend,
        backend.storage.join(exporter_uri, PUBLISHED_BEYOND),
        json.dumps(metadata).encode(),
    )
    before = _files(backend, exporter_uri)

    outcomes = [_export(exporter, step) for step in (2, 3)]

    assert [o.metadata.version for o in outcomes if o.metadata] == [NOW + 2, NOW + 3]
    for outcome in outcomes:
        assert sorted(outcome.retention.foreign) == [PUBLISHED_BEYOND, FOREIGN_BEYOND]
        assert f"{PUBLISHED_BEYOND} keep foreign: numbered beyond {MAX_VERSION}" in (
            outcome.retention.explain()
        )
    after = _files(backend, exporter_uri)
    for name, size in before.items():
        if name.startswith((FOREIGN_BEYOND, PUBLISHED_BEYOND)):
            assert after[name] == size
    state = exporter.scan()
    assert [m.version for m in state.committed] == [NOW + 3]
    assert state.foreign == [int(FOREIGN_BEYOND), int(PUBLISHED_BEYOND)]


def test_an_export_that_could_only_be_unservable_fails_and_changes_nothing(
    backend: Backend,
) -> None:
    exporter_uri = backend.uri("export", "latest")
    exporter = ExporterDir(backend.storage, exporter_uri)
    _write_dir(backend, backend.storage.join(exporter_uri, str(MAX_VERSION)))
    before = _files(backend, exporter_uri)

    with pytest.raises(VersionRangeError) as raised:
        _export(exporter, step=1)

    message = str(raised.value)
    assert f"cannot publish into {exporter_uri}" in message
    assert f"the newest existing version is {MAX_VERSION}" in message
    assert "TF Serving can serve" in message and "Nothing was published" in message
    assert _files(backend, exporter_uri) == before
    assert exporter.scan().foreign == [MAX_VERSION]
