"""Parsing and validating storage URIs: `gs://bucket/prefix`, `file:///path` or `/path`.

Relative local paths are rejected rather than resolved: an Airflow scheduler, worker and
triggerer each have their own working directory, so a relative path would name different
directories in different processes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

GCS_SCHEME = "gs"
FILE_SCHEME = "file"

# GCS bucket names: 3-63 characters (up to 222 with dots), lowercase letters, digits, -, _, .
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_SUPPORTED = "an absolute local path, a file:///absolute/path URI or gs://bucket/prefix"


@dataclass(frozen=True)
class StorageUri:
    """A parsed URI: `scheme` is "file" or "gs"; `path` is an absolute local path or an
    object prefix without leading or trailing slashes ("" for the bucket root)."""

    scheme: str
    bucket: str
    path: str

    @property
    def is_gcs(self) -> bool:
        """Whether the URI names a GCS bucket or prefix."""
        return self.scheme == GCS_SCHEME

    def __str__(self) -> str:
        if self.is_gcs:
            return f"gs://{self.bucket}/{self.path}" if self.path else f"gs://{self.bucket}"
        return self.path


def parse_uri(uri: str) -> StorageUri:
    """Parse and normalise a URI; ValueError names the bad URI and says what is valid."""
    if not isinstance(uri, str) or not uri:
        raise ValueError(f"storage URI must be a non-empty string, got {uri!r}; use {_SUPPORTED}")
    if "\x00" in uri:
        raise ValueError(f"storage URI {uri!r} contains a NUL character")
    if uri.startswith("/"):
        return StorageUri(FILE_SCHEME, "", os.path.normpath(uri))
    parts = urlsplit(uri)
    if parts.scheme == FILE_SCHEME:
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"file URI {uri!r} must be file:///absolute/path")
        return StorageUri(FILE_SCHEME, "", os.path.normpath(parts.path))
    if parts.scheme == GCS_SCHEME:
        return _parse_gcs(uri, parts.netloc, parts.path)
    if parts.scheme and "://" in uri:
        raise ValueError(f"unsupported URI scheme {parts.scheme!r} in {uri!r}; use {_SUPPORTED}")
    raise ValueError(f"relative local path {uri!r} is not allowed; use {_SUPPORTED}")


def _parse_gcs(uri: str, bucket: str, path: str) -> StorageUri:
    if not bucket:
        raise ValueError(f"GCS URI {uri!r} names no bucket; use gs://bucket/prefix")
    if not _BUCKET.match(bucket):
        raise ValueError(
            f"GCS URI {uri!r} has an invalid bucket name {bucket!r}: use 3-222 lowercase "
            "letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        )
    segments = [s for s in path.split("/") if s]
    if any(s in (".", "..") for s in segments):
        raise ValueError(f"GCS URI {uri!r} must not contain '.' or '..' segments")
    return StorageUri(GCS_SCHEME, bucket, "/".join(segments))


def exporter_uri(model_dir: str, name: str, export_dir_base: str | None = None) -> str:
    """Where an exporter publishes: `export_dir_base` if given, else `<model_dir>/export/<name>`
    (where train_and_evaluate put each exporter's versions); normalised, without I/O."""
    return str(parse_uri(export_dir_base or f"{model_dir.rstrip('/')}/export/{name}"))
