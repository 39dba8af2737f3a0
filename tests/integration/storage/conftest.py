"""The `backend` fixture: every shared storage test runs on local disk and on the GCS emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_test_models import Backend

from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage


@pytest.fixture(params=["local", "gcs"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The same tests on local disk and on the GCS emulator (real HTTP)."""
    if request.param == "local":
        return Backend("local", LocalStorage(), str(tmp_path / "root"))
    client, bucket = request.getfixturevalue("gcs_bucket")
    return Backend("gcs", GcsStorage(client), f"gs://{bucket}/root")
