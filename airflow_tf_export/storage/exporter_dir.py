"""One exporter directory (`<model_dir>/export/<name>`): its committed versions, its staging
leftovers, verification and applying retention plans.

Only committed versions count: an integer directory whose `export_metadata.json` parses and
whose files match the manifest by name and size. `verify` also compares every CRC32C.

An integer directory without `export_metadata.json` is uncommitted. It is ours only while the
GCS claim `temp-claim-<version>` of its publish exists (a local publish renames a complete
directory, so a crash of ours never leaves one); otherwise it is foreign, e.g. a tf.estimator
export, and retention keeps it. A scan reads each foreign version's global step from its
SavedModel variables (see `tensor_bundle`), once per scan, so the strategies can count it.
One with our metadata but no saved_model file is a delete of ours cut short (GCS deletes
saved_model first and the metadata last): cleaned up too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from airflow_tf_export.core.foreign import ForeignVersion
from airflow_tf_export.core.metadata import METADATA_FILENAME, ExportMetadata, MetadataError
from airflow_tf_export.core.retention import RetentionPlan, StagingDir
from airflow_tf_export.core.versions import (
    claim_version,
    is_beyond_versions,
    is_staging_name,
    parse_version,
)
from airflow_tf_export.storage.base import (
    Entry,
    Storage,
    StorageNotFoundError,
    VersionIntegrityError,
)
from airflow_tf_export.storage.manifest import (
    CHUNK_BYTES,
    SAVED_MODEL_FILENAMES,
    manifest_mismatch,
    verify_files,
)
from airflow_tf_export.storage.uris import parse_uri

_METADATA_READERS = 8


@dataclass(frozen=True)
class ExporterDirState:
    """What one scan found. `staging` holds every uncommitted entry, ours and foreign (see
    `StagingDir.ours`). `invalid` holds (version, error) for version directories that have
    metadata but cannot be trusted; they are reported, never deleted automatically.
    `foreign_versions` holds the foreign versions with the global step read from each (or why
    it could not be read), sorted by version."""

    committed: list[ExportMetadata] = field(default_factory=list)
    staging: list[StagingDir] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)
    foreign_versions: list[ForeignVersion] = field(default_factory=list)

    @property
    def foreign(self) -> list[int]:
        """Integer directories we did not write: without metadata and publish claim, or
        numbered beyond MAX_VERSION (never a version)."""
        return sorted(int(s.name) for s in self.staging if not s.ours)


@dataclass
class _Child:
    """One top-level name in the exporter directory and the files seen below it."""

    name: str
    is_dir: bool
    mtime: float | None
    files: dict[str, Entry] = field(default_factory=dict)

    def newest_mtime(self) -> float | None:
        times = [t for t in [self.mtime, *(e.mtime for e in self.files.values())] if t]
        return max(times, default=None)


class ExporterDir:
    """The versions of one exporter, read and cleaned through a Storage backend."""

    def __init__(self, storage: Storage, uri: str) -> None:
        self.storage = storage
        self.uri = str(parse_uri(uri))

    def version_uri(self, version: int) -> str:
        """Where version `version` lives."""
        return self.storage.join(self.uri, str(version))

    def scan(self, *, now_seconds: float | None = None) -> ExporterDirState:
        """Classify every child: committed versions (sorted), uncommitted entries (`temp-*`
        and integer dirs without metadata, with the claim of their publish if there is one,
        aged by their newest file), invalid versions, and the foreign versions with their
        global steps. A missing exporter directory is an empty one (nothing exported yet)."""
        return self._scan(now_seconds, read_foreign_steps=True)

    def _scan(self, now_seconds: float | None, *, read_foreign_steps: bool) -> ExporterDirState:
        try:
            top = self.storage.list_dir(self.uri)
        except StorageNotFoundError:
            return ExporterDirState()
        children = {e.name: _Child(e.name, e.is_dir, e.mtime) for e in top}
        for entry in self._files_or_empty(self.uri):
            head, _, rest = entry.name.partition("/")
            if rest and head in children:
                children[head].files[rest] = entry
        now = time.time() if now_seconds is None else now_seconds
        claims = {v: c for c in children.values() if (v := claim_version(c.name)) is not None}
        state = ExporterDirState()
        candidates: list[tuple[int, _Child]] = []
        foreign: list[tuple[int, _Child]] = []
        for child in children.values():
            version = parse_version(child.name)
            if is_staging_name(child.name) or is_beyond_versions(child.name):
                state.staging.append(_staging(child, now))
            elif version is None:
                continue
            elif not child.is_dir:
                state.invalid.append((version, f"{self._at(child.name)} is a file, not a version"))
            elif METADATA_FILENAME not in child.files:
                state.staging.append(_staging(child, now, claims.get(version)))
                if version not in claims:
                    foreign.append((version, child))
            elif not any(name in child.files for name in SAVED_MODEL_FILENAMES):
                state.staging.append(_staging(child, now, deleting=True))
            else:
                candidates.append((version, child))
        with ThreadPoolExecutor(_METADATA_READERS) as pool:
            checked = pool.map(lambda vc: self._check(*vc), candidates)
            if read_foreign_steps:
                state.foreign_versions.extend(pool.map(lambda vc: self._foreign(*vc), foreign))
            for (version, _child), result in zip(candidates, checked, strict=True):
                if isinstance(result, ExportMetadata):
                    state.committed.append(result)
                elif result is not None:
                    state.invalid.append((version, result))
        state.committed.sort(key=lambda m: m.version)
        state.invalid.sort()
        state.foreign_versions.sort(key=lambda f: f.version)
        return state

    def committed(self) -> list[ExportMetadata]:
        """Committed versions sorted by version (foreign versions' steps are not read)."""
        return self._scan(None, read_foreign_steps=False).committed

    def newest_committed(self) -> ExportMetadata | None:
        """The committed version with the highest number, or None."""
        committed = self.committed()
        return committed[-1] if committed else None

    def verify(self, version: int) -> ExportMetadata:
        """Read every file of `version` back and compare it with the manifest (size and
        CRC32C); VersionIntegrityError names the first file or field that does not match."""
        uri = self.version_uri(version)
        try:
            files = {e.name: e for e in self.storage.list_files(uri)}
        except StorageNotFoundError:
            raise StorageNotFoundError(
                f"version {version} does not exist in exporter directory {self.uri}"
            ) from None
        if METADATA_FILENAME not in files:
            raise VersionIntegrityError(
                f"{uri} has no {METADATA_FILENAME}: it is not a committed version"
            )
        meta = self._read_metadata(version, files)
        if not isinstance(meta, ExportMetadata):
            raise VersionIntegrityError(meta)

        def read_chunks(path: str) -> Iterator[bytes]:
            size = files[path].size
            for start in range(0, size, CHUNK_BYTES):
                yield self.storage.read_bytes(
                    self.storage.join(uri, path), start, min(start + CHUNK_BYTES, size)
                )

        verify_files(uri, meta.manifest, read_chunks)
        return meta

    def apply(self, plan: RetentionPlan) -> None:
        """Delete the plan's `delete_versions` and `staging_delete`, then its `claim_delete`
        (a version whose claim went first would look foreign if the delete were cut short)."""
        names = [str(v) for v in plan.delete_versions] + list(plan.staging_delete)
        for name in [*names, *plan.claim_delete]:
            if parse_version(name) is None and not is_staging_name(name):
                raise ValueError(
                    f"retention plan names {name!r}, which is neither a version nor a staging "
                    f"directory of {self.uri}; nothing was deleted"
                )
        for batch in (names, plan.claim_delete):
            if batch:
                self.storage.delete_trees([self.storage.join(self.uri, n) for n in batch])

    def _foreign(self, version: int, child: _Child) -> ForeignVersion:
        """The foreign version with its global step, or with why that cannot be read. The
        bundle reader (protobuf descriptors) is imported only now: DAG parsing imports this
        module and stays fast."""
        from airflow_tf_export.storage.sstable import TableError
        from airflow_tf_export.storage.tensor_bundle import (
            TensorBundleError,
            saved_model_global_step,
        )

        try:
            step = saved_model_global_step(self.storage, self.version_uri(version), child.files)
        except (TensorBundleError, TableError) as err:
            return ForeignVersion(version, unreadable=str(err))
        return ForeignVersion(version, step)

    def _check(self, version: int, child: _Child) -> ExportMetadata | str | None:
        """The committed metadata, why the version is invalid, or None if it vanished.

        A mismatch is confirmed by listing the version again: a publish or a delete may
        have run while the exporter directory was being listed.
        """
        checked = self._read_metadata(version, child.files)
        if isinstance(checked, ExportMetadata):
            return checked
        try:
            fresh = {e.name: e for e in self.storage.list_files(self.version_uri(version))}
        except StorageNotFoundError:
            return None
        return self._read_metadata(version, fresh)

    def _read_metadata(self, version: int, files: Mapping[str, Entry]) -> ExportMetadata | str:
        """The metadata if it parses and matches the files by name and size, else why not."""
        source = self.storage.join(self.version_uri(version), METADATA_FILENAME)
        try:
            meta = ExportMetadata.from_json(self.storage.read_bytes(source), source=source)
        except StorageNotFoundError:
            return f"{source} does not exist"
        except MetadataError as err:
            return str(err)
        if meta.version != version:
            return f"{source} says version {meta.version}, but its directory is {version}"
        sizes = {name: e.size for name, e in files.items() if name != METADATA_FILENAME}
        mismatch = manifest_mismatch(meta.manifest, sizes)
        if mismatch is not None:
            return f"{self.version_uri(version)}: {mismatch}"
        return meta

    def _files_or_empty(self, uri: str) -> Sequence[Entry]:
        try:
            return self.storage.list_files(uri)
        except StorageNotFoundError:
            return []

    def _at(self, name: str) -> str:
        return self.storage.join(self.uri, name)


def _staging(
    child: _Child, now: float, claim: _Child | None = None, *, deleting: bool = False
) -> StagingDir:
    """An uncommitted entry aged by its newest file, or its claim's if that is newer."""
    times = [t for c in (child, claim) if c is not None and (t := c.newest_mtime())]
    age = max(0.0, now - max(times)) if times else 0.0
    return StagingDir(child.name, age, None if claim is None else claim.name, deleting)
