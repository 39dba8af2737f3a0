"""A GCS delete of a version cut short (the worker killed between batch requests) must leave
something retention recognises as its own and cleans up after the grace period: never an
integer dir without metadata, which retention keeps as foreign. The interruption is
injected: a killed worker cannot be timed between two batch requests otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from storage_test_models import template, write_model_files

from airflow_tf_export.core.retention import KeepNewest, plan_retention
from airflow_tf_export.storage import gcs
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.gcs import GcsStorage


@pytest.mark.parametrize("killed_at_batch", [1, 2, 3, 4, 5])
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

    later = exporter.scan(now_seconds=10**10)
    # Cut short before its first batch, version 1001 is still intact; after it, it is ours.
    assert [m.version for m in later.committed] in ([1001, 1002, 1003], [1002, 1003])
    assert later.foreign == [] and later.invalid == []
    cleanup = plan_retention(
        later.committed, [KeepNewest(2)], staging=later.staging, staging_grace_seconds=60
    )
    exporter.apply(cleanup)
    assert not list(client.list_blobs(bucket, prefix="m/export/latest/1001/"))
    assert [m.version for m in exporter.committed()] == [1002, 1003]
