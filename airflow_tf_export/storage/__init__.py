"""One Storage protocol with a local POSIX and a GCS backend; publishing versions atomically."""

from airflow_tf_export.storage.base import (
    BucketNotFoundError,
    Entry,
    FileInfo,
    Storage,
    StorageError,
    StorageNotFoundError,
    VersionedBytes,
    VersionIntegrityError,
    WrittenModel,
)
from airflow_tf_export.storage.registry import storage_for

__all__ = [
    "BucketNotFoundError",
    "Entry",
    "FileInfo",
    "Storage",
    "StorageError",
    "StorageNotFoundError",
    "VersionIntegrityError",
    "VersionedBytes",
    "WrittenModel",
    "storage_for",
]
