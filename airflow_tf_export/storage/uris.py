"""Parsing and validating storage URIs: `gs://bucket/prefix`, `file:///path` or `/path`.

Relative local paths are rejected rather than resolved: an Airflow scheduler, worker and
triggerer each have their own working directory, so a relative path would name different
directories in different processes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

GCS_SCHEME = "gs"
FILE_SCHEME = "file"

# GCS bucket names: 3-63 characters (up to 222 with dots), lowercase letters, digits, -, _, .
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
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
    """Parse and normalise a URI; ValueError names the bad URI and says what is valid.

    A plain absolute path is taken literally: '#' and '?' are ordinary characters of a POSIX
    file name. In a `file://` or `gs://` URI they would start a fragment or a query, which
    name no directory, so such a URI is refused rather than cut short (`gs://b/run#2` and
    `gs://b/run#3` would both have named `gs://b/run`).
    """
    return _parse(uri, pattern=False)


def parse_pattern(pattern: str) -> StorageUri:
    """Parse a glob pattern such as `gs://bucket/model/eval/*.tfevents.*` like `parse_uri`,
    except that its path is taken literally: '?' is a wildcard there, not a query."""
    return _parse(pattern, pattern=True)


def _parse(uri: str, *, pattern: bool) -> StorageUri:
    if not isinstance(uri, str) or not uri:
        raise ValueError(f"storage URI must be a non-empty string, got {uri!r}; use {_SUPPORTED}")
    if "\x00" in uri:
        raise ValueError(f"storage URI {uri!r} contains a NUL character")
    if uri.startswith("/"):
        return StorageUri(FILE_SCHEME, "", os.path.normpath(uri))
    match = _SCHEME.match(uri)
    scheme = match.group(1).lower() if match else ""
    if scheme not in (FILE_SCHEME, GCS_SCHEME):
        if scheme and "://" in uri:
            raise ValueError(f"unsupported URI scheme {scheme!r} in {uri!r}; use {_SUPPORTED}")
        raise ValueError(f"relative local path {uri!r} is not allowed; use {_SUPPORTED}")
    netloc, path = _authority_and_path(uri.split(":", 1)[1])
    if not pattern:
        _refuse_fragment_or_query(uri, scheme, path)
    if scheme == FILE_SCHEME:
        if netloc not in ("", "localhost") or not path.startswith("/"):
            raise ValueError(f"file URI {uri!r} must be file:///absolute/path")
        return StorageUri(FILE_SCHEME, "", os.path.normpath(path))
    return _parse_gcs(uri, netloc, path)


def _authority_and_path(rest: str) -> tuple[str, str]:
    """Split what follows `scheme:` into the authority (`//<authority>/...`) and the path,
    keeping every character (no fragment or query is split off)."""
    if not rest.startswith("//"):
        return "", rest
    authority, slash, path = rest[2:].partition("/")
    return authority, slash + path


def _refuse_fragment_or_query(uri: str, scheme: str, path: str) -> None:
    marks = [i for i in (uri.find("#"), uri.find("?")) if i >= 0]
    if not marks:
        return
    mark = uri[min(marks)]
    part = "fragment" if mark == "#" else "query"
    meant = uri[: min(marks)]
    label = "file URI" if scheme == FILE_SCHEME else "GCS URI"
    if scheme == FILE_SCHEME:
        instead = (
            f"if {mark!r} is part of the directory's name, give its plain absolute path "
            f"{path!r} instead"
        )
    else:
        instead = (
            f"GCS object names may contain {mark!r}, but a gs:// URI cannot name them here: "
            "use a prefix without '#' and '?' (copy or rename the directory)"
        )
    raise ValueError(
        f"{label} {uri!r} contains {mark!r}, which starts a URI {part}: the URI would "
        f"name {meant!r}, so it is refused; {instead}"
    )


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
