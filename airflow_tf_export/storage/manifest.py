"""Manifests: every file of a version with its size and CRC32C, built and checked.

`build_manifest` reads a local SavedModel directory before it is published;
`manifest_mismatch` compares a manifest with a listing (names and sizes, cheap);
`verify_files` reads every file back and compares CRC32C (complete, costs a full read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import google_crc32c

from airflow_tf_export.core.metadata import (
    METADATA_FILENAME,
    ManifestEntry,
    is_metadata_checksum_name,
)
from airflow_tf_export.core.ownership import DELETE_MARKER
from airflow_tf_export.storage.base import StorageError, VersionIntegrityError
from airflow_tf_export.storage.local_tree import regular_files

SAVED_MODEL_FILENAMES = ("saved_model.pb", "saved_model.pbtxt")
CHUNK_BYTES = 8 * 1024 * 1024
# Local files are checksummed in 1 MiB reads: each read allocates a fresh bytes object, and
# an 8 MiB one costs its page faults on every read (twice the time of the CRC32C itself).
LOCAL_READ_BYTES = 1024 * 1024


def crc32c_hex(data: bytes) -> str:
    """CRC32C of `data` as 8 lowercase hex digits (the manifest's format)."""
    return f"{google_crc32c.value(data):08x}"


def file_crc32c(path: Path) -> str:
    """CRC32C of a local file, read in chunks."""
    checksum = google_crc32c.Checksum()
    with path.open("rb", buffering=0) as handle:
        while chunk := handle.read(LOCAL_READ_BYTES):
            checksum.update(chunk)
    return checksum.digest().hex()


def check_publishable(source_dir: Path) -> None:
    """Raise StorageError unless `source_dir` is a directory holding a SavedModel to publish
    and no symbolic link (SymbolicLinkError names it: a version never holds one)."""
    if not source_dir.exists():
        raise StorageError(f"SavedModel directory {source_dir} does not exist")
    if not source_dir.is_dir():
        raise StorageError(f"SavedModel path {source_dir} is a file, expected a directory")
    if not any((source_dir / name).is_file() for name in SAVED_MODEL_FILENAMES):
        raise StorageError(
            f"SavedModel directory {source_dir} holds neither saved_model.pb nor saved_model.pbtxt"
        )
    reserved = sorted(p.name for p in source_dir.iterdir() if is_record_file(p.name))
    if reserved:
        raise StorageError(
            f"SavedModel directory {source_dir} already holds {reserved[0]}; publishing "
            f"writes {METADATA_FILENAME}, its checksum and delete markers itself"
        )
    regular_files(source_dir)


def is_record_file(name: str) -> bool:
    """Whether a version dir's top-level file belongs to its record rather than to the
    SavedModel: `export_metadata.json`, its checksum sibling, or our delete marker. Manifests
    never list them."""
    return name in (METADATA_FILENAME, DELETE_MARKER) or is_metadata_checksum_name(name)


def build_manifest(source_dir: Path) -> tuple[ManifestEntry, ...]:
    """The manifest of a local directory: relative path, size and CRC32C of every file
    (SymbolicLinkError when it holds a symbolic link)."""
    return tuple(
        ManifestEntry(
            path=path.relative_to(source_dir).as_posix(),
            size=path.stat().st_size,
            crc32c=file_crc32c(path),
        )
        for path in regular_files(source_dir)
    )


def manifest_mismatch(manifest: Sequence[ManifestEntry], sizes: Mapping[str, int]) -> str | None:
    """Why the files listed (relative path -> size, record files excluded) do not match, or
    None."""
    expected = {entry.path: entry.size for entry in manifest}
    missing = sorted(set(expected) - set(sizes))
    if missing:
        return f"file {missing[0]!r} in the manifest is missing ({len(missing)} missing)"
    extra = sorted(set(sizes) - set(expected))
    if extra:
        return f"file {extra[0]!r} is not in the manifest ({len(extra)} unexpected)"
    for path in sorted(expected):
        if sizes[path] != expected[path]:
            return f"file {path!r} has {sizes[path]} bytes, the manifest says {expected[path]}"
    return None


def verify_files(
    version_uri: str,
    manifest: Iterable[ManifestEntry],
    read_chunks: Callable[[str], Iterable[bytes]],
) -> None:
    """Read every manifest file (relative path -> chunks) and compare size and CRC32C.

    Raises VersionIntegrityError naming the first file that does not match.
    """
    for entry in manifest:
        checksum = google_crc32c.Checksum()
        size = 0
        for chunk in read_chunks(entry.path):
            checksum.update(chunk)
            size += len(chunk)
        actual = checksum.digest().hex()
        if size != entry.size or actual != entry.crc32c:
            raise VersionIntegrityError(
                f"{version_uri}/{entry.path} does not match its manifest: "
                f"{size} bytes with crc32c {actual}, expected {entry.size} bytes with "
                f"crc32c {entry.crc32c}"
            )
