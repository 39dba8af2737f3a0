"""`storage_for(uri)`: the backend for a URI; google-cloud-storage is imported only for gs://."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_tf_export.storage.base import Storage
from airflow_tf_export.storage.local import LocalStorage
from airflow_tf_export.storage.uris import parse_uri


def default_gcs_client() -> Any:
    """A client from Application Default Credentials (honours STORAGE_EMULATOR_HOST)."""
    from google.cloud import storage

    return storage.Client()


def storage_for(uri: str, *, gcs_client_factory: Callable[[], Any] | None = None) -> Storage:
    """The Storage for `uri` (ValueError names a bad URI). For gs:// the client comes from
    `gcs_client_factory` (e.g. built from an Airflow connection), else ADC."""
    if parse_uri(uri).is_gcs:
        from airflow_tf_export.storage.gcs import GcsStorage

        return GcsStorage((gcs_client_factory or default_gcs_client)())
    return LocalStorage()
