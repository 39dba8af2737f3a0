"""A GCS delete of a version cut short (the worker killed between batch requests) never shows
a committed version with missing files nor a `saved_model.pb` without its variables, and
leaves something retention proves is its own (the delete marker) and cleans up after the
grace period: never an integer dir without metadata that looks foreign. The interruption is
injected: a killed worker cannot be timed between two batch requests otherwise."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from gcs_fixtures import RecordingProxy, emulator_client
from storage_test_models import model_file_names, template, variable_file_names, write_model_files

from airflow_tf_export.core.metadata import METADATA_FILENAME
from airflow_tf_export.core.ownership import DELETE_MARKER
from airflow_tf_export.core.retention import KeepNewest, plan_retention
from airflow_tf_export.storage import gcs
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.gcs import GcsStorage

PREFIX = "m/export/latest/1001/"
# With 3 calls per batch: the marker copy, the record and its checksum, saved_model.pb, the
# 19 other files in 7 batches, then the marker.
BATCHES = 11


@pytest.mark.parametrize("killed_at_batch", [1, 2, 3, 4, 5, 10, BATCHES])
def test_an_interrupted_version_delete_is_cleaned_up_later(
    gcs_bucket: tuple[Any, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    killed_at_batch: int,
) -> None:
    client, bucket = gcs_bucket
    storage = GcsStorage(client)
    uri = f"gs://{bucket}/m/export/latest"
    exporter = ExporterDir(storage, uri)
    for step in (1, 2, 3):
        source = tmp_path / f"source-{step}"
        source.mkdir()
        write_model_files(source, step)
        storage.publish_version(source, uri, template(step), now_seconds=1000 + step)
    state = exporter.scan()
    plan = plan_retention(state.committed, [KeepNewest(2)], staging=state.staging)
    assert plan.delete_versions == (1001,)

    monkeypatch.setattr(gcs, "BATCH_LIMIT", 3)
    batch, calls = client.batch, []

    def killed_worker(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == killed_at_batch:
            raise KeyboardInterrupt("worker killed")
        return batch(*args, **kwargs)

    monkeypatch.setattr(client, "batch", killed_worker)
    with pytest.raises(KeyboardInterrupt):
        exporter.apply(plan)
    monkeypatch.setattr(client, "batch", batch)

    left = {b.name[len(PREFIX) :] for b in client.list_blobs(bucket, prefix=PREFIX)}
    if METADATA_FILENAME in left:
        assert set(model_file_names()) <= left, "a committed version lost files"
    if "saved_model.pb" in left:
        assert set(variable_file_names()) <= left, "saved_model.pb without its variables"
    if left - {METADATA_FILENAME, DELETE_MARKER} and METADATA_FILENAME not in left:
        assert DELETE_MARKER in left, "an uncommitted leftover must carry our marker"

    later = exporter.scan(now_seconds=10**10)
    # Cut short before the record went, version 1001 is still committed; after, it is ours.
    assert [m.version for m in later.committed] in ([1001, 1002, 1003], [1002, 1003])
    assert later.foreign == [] and later.invalid == []
    for meta in later.committed:
        assert exporter.verify(meta.version).metadata == meta
    cleanup = plan_retention(
        later.committed, [KeepNewest(2)], staging=later.staging, staging_grace_seconds=60
    )
    exporter.apply(cleanup)
    assert not list(client.list_blobs(bucket, prefix=PREFIX))
    assert [m.version for m in exporter.committed()] == [1002, 1003]


def test_deleting_versions_takes_one_listing_and_five_batch_requests(
    gcs_proxy: RecordingProxy, tmp_path: Path
) -> None:
    """Marker copies, records, saved_models, other files, markers: one batch each here."""
    client = emulator_client(gcs_proxy.url)
    bucket = client.create_bucket(f"delete-{uuid.uuid4().hex[:12]}").name
    storage = GcsStorage(client)
    uri = f"gs://{bucket}/m/export/latest"
    for step in (1, 2):
        source = tmp_path / f"source-{step}"
        source.mkdir()
        write_model_files(source, step)
        storage.publish_version(source, uri, template(step), now_seconds=1000 + step)
    gcs_proxy.reset()
    storage.delete_versions(uri, [1001, 1002, 1003])
    assert [(r.method, r.path.split("/")[1]) for r in gcs_proxy.requests] == [
        ("GET", "storage"),
        *[("POST", "batch")] * 5,
    ]
    assert not list(client.list_blobs(bucket, prefix="m/export/latest/"))
