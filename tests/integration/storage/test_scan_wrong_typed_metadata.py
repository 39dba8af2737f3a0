"""A version whose export_metadata.json is valid JSON with a wrong-typed field is reported as
invalid; it must not make the whole exporter directory unreadable."""

from __future__ import annotations

import json

import pytest
from storage_test_models import Backend

from airflow_tf_export.core.metadata import METADATA_FILENAME
from airflow_tf_export.storage.exporter_dir import ExporterDir


@pytest.mark.parametrize(
    ("field", "value"),
    [("signature_keys", []), ("eval_result", "0.3"), ("eval_result", [1]), ("tags", "serve")],
)
def test_a_wrong_typed_field_makes_that_version_invalid(
    backend: Backend, field: str, value: object
) -> None:
    exporter_uri = backend.uri("export", "best")
    damaged = backend.publish(exporter_uri, step=1)
    intact = backend.publish(exporter_uri, step=2)
    metadata_uri = backend.uri("export", "best", str(damaged.version), METADATA_FILENAME)
    payload = json.loads(backend.storage.read_bytes(metadata_uri))
    payload[field] = value
    backend.storage.write_bytes(metadata_uri, json.dumps(payload).encode())

    state = ExporterDir(backend.storage, exporter_uri).scan()

    assert state.committed == [intact]
    ((version, reason),) = state.invalid
    assert version == damaged.version
    assert f"field '{field}' must be" in reason
