"""One exporter directory (`<model_dir>/export/<name>`): its committed versions, its
uncommitted entries, verification, and retention under the exporter lock.

Only committed versions count: an integer directory whose `export_metadata.json` parses,
matches its checksum sibling (when it has one: earlier releases wrote none) and whose files
match the manifest by name and size. `verify` also compares every CRC32C.

An integer directory without `export_metadata.json` is uncommitted. It is ours when the GCS
claim of its publish exists and holds our token, or when it holds our delete marker (a
delete cut short); otherwise it is foreign, e.g. a tf.estimator export, and retention keeps
it. A scan reads each foreign version's global step from its SavedModel variables (see
`tensor_bundle`), once per scan, so the strategies can count it. An integer directory with
metadata that does not check out (e.g. a user's copy of a record, or what an earlier
release's delete cut short) is invalid: reported, never deleted. `temp-*` entries are ours
only in the forms of `core.ownership`; others are kept and reported.

A scan lists the files of version directories and of our staging dirs only, and never
follows a symbolic link: a link with an integer name is invalid (reported, kept), any other
link is ignored, a link inside a version makes it invalid (or, in a foreign version, where
its step would be read, its step unreadable). So no foreign entry can slow, hang or fail it.

`scan` reads every record; `scan_indexed` reads only the records whose stamp changed since the
index (`.airflow-tf-export-index.json`, see `core.exporter_index`) recorded them, and leaves
the others unchecked until `confirm` checks those a decision rests on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from airflow_tf_export.core.exporter_index import (
    INDEX_NAME,
    IndexedVersion,
    decode_index,
    encode_index,
)
from airflow_tf_export.core.foreign import ForeignVersion
from airflow_tf_export.core.metadata import (
    METADATA_FILENAME,
    ExportMetadata,
    MetadataError,
    VersionFacts,
    check_metadata_checksum,
)
from airflow_tf_export.core.ownership import (
    DELETE_MARKER,
    claim_version,
    is_claim_body,
    is_our_staging_name,
)
from airflow_tf_export.core.retention import RetentionPlan, StagingDir
from airflow_tf_export.core.versions import (
    is_beyond_versions,
    is_integer_name,
    is_staging_name,
    parse_version,
)
from airflow_tf_export.storage.base import (
    Entry,
    Storage,
    StorageError,
    StorageNotFoundError,
    VersionIntegrityError,
)
from airflow_tf_export.storage.manifest import (
    CHUNK_BYTES,
    SAVED_MODEL_FILENAMES,
    is_record_file,
    manifest_mismatch,
    verify_files,
)
from airflow_tf_export.storage.uris import parse_uri

_CLAIM_READ_BYTES = 4096
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class VerifiedVersion:
    """What `ExporterDir.verify` found: the version's metadata, every file matching its
    manifest, and the checksum file its record matched (None: the record has no checksum,
    as every record an earlier release published; its content could not be checked)."""

    metadata: ExportMetadata
    metadata_checksum: str | None

    @property
    def note(self) -> str:
        """How the record was checked, in words."""
        if self.metadata_checksum is None:
            return (
                f"{METADATA_FILENAME} has no checksum (published by an earlier release): its "
                "content is not checked; every file matches the manifest"
            )
        return (
            f"{METADATA_FILENAME} matches {self.metadata_checksum}; every file matches the manifest"
        )


@dataclass(frozen=True)
class ExporterDirState:
    """What one scan found. `staging` holds every uncommitted entry, ours and not (see
    `StagingDir.ours`). `invalid` holds (version, error) for version directories that have
    metadata but cannot be trusted; they are reported, never deleted automatically.
    `foreign_versions` holds the foreign versions with the global step read from each (or why
    it could not be read), sorted by version.

    `committed` holds the versions whose record was read and checked in full; `stamps` the
    stamp each one's record had as listed (see `Storage.list_dir_stamped`). `indexed` holds
    the committed versions an indexed scan took from the index (their record's stamp is the
    one the index recorded): their files were not listed nor their records read;
    `ExporterDir.confirm` checks them as a full scan would, moving them to `committed`."""

    committed: list[ExportMetadata] = field(default_factory=list)
    staging: list[StagingDir] = field(default_factory=list)
    invalid: list[tuple[int, str]] = field(default_factory=list)
    foreign_versions: list[ForeignVersion] = field(default_factory=list)
    stamps: Mapping[int, str] = field(default_factory=dict)
    indexed: Mapping[int, IndexedVersion] = field(default_factory=dict)

    def versions(self) -> list[VersionFacts]:
        """Every committed version, checked or indexed, in no particular order: what a
        decision reads of each (see `core.strategies.versions_deciding`)."""
        return [*self.committed, *self.indexed.values()]

    def summaries(self) -> list[ExportMetadata]:
        """Every committed version's record sorted by version; an indexed version's as far
        as the index keeps it (no manifest, tags, signatures, lineage or reason)."""
        found = [*self.committed, *(row.summary for row in self.indexed.values())]
        return sorted(found, key=lambda m: m.version)

    @property
    def foreign(self) -> list[int]:
        """Integer directories we did not write: without metadata and publish claim, or
        numbered beyond MAX_VERSION (never a version)."""
        return sorted(int(s.name) for s in self.staging if not s.ours and is_integer_name(s.name))


@dataclass
class _Child:
    """One top-level name in the exporter directory and the files seen below it."""

    name: str
    is_dir: bool
    mtime: float | None
    is_link: bool = False
    files: dict[str, Entry] = field(default_factory=dict)

    def newest_mtime(self) -> float | None:
        times = [t for t in [self.mtime, *(e.mtime for e in self.files.values())] if t]
        return max(times, default=None)


class ExporterDir:
    """The versions of one exporter, read and cleaned through a Storage backend."""

    def __init__(self, storage: Storage, uri: str) -> None:
        self.storage = storage
        self.uri = str(parse_uri(uri))
        # The index file as this instance last read or wrote it: whether it exists (None:
        # not read yet), and its rows (None: absent, or not one this release wrote whole).
        self._index_exists: bool | None = None
        self._index_rows: Mapping[str, IndexedVersion] | None = None

    def version_uri(self, version: int) -> str:
        """Where version `version` lives."""
        return self.storage.join(self.uri, str(version))

    def scan(self, *, now_seconds: float | None = None) -> ExporterDirState:
        """Classify every child: committed versions (sorted), uncommitted entries (`temp-*`
        and integer dirs without metadata, with what proves them ours, aged by their newest
        file), invalid versions, and the foreign versions with their global steps. A missing
        exporter directory is an empty one (nothing exported yet). Every record is read and
        every version's files listed; see `scan_indexed` for a scan that reads only what
        changed."""
        return self._scan(now_seconds, read_foreign_steps=True, known={})

    def scan_indexed(
        self, *, now_seconds: float | None = None, since: ExporterDirState | None = None
    ) -> ExporterDirState:
        """`scan`, but a committed version whose record has the stamp it had when an earlier
        scan read it is taken from that scan (`since`) or else from the index file, unread
        and unlisted: it is in `indexed`, and `confirm` checks it. One listing of the
        exporter dir (a `stat` per version on local disk; GCS: a request per 1,000 objects),
        one read of the index, and a full check of each version whose record changed."""
        known = self._read_index() if since is None else _known(since)
        return self._scan(now_seconds, read_foreign_steps=True, known=known)

    def confirm(self, state: ExporterDirState, versions: Iterable[int]) -> ExporterDirState:
        """`state` with each of `versions` that is indexed checked as `scan` checks a version
        (its files listed against the manifest, its record read and matched with its
        checksum): moved to `committed` with its full record, or to `invalid` (or dropped
        when it vanished since the listing)."""
        todo = sorted(set(versions) & state.indexed.keys())
        if not todo:
            return state
        checked = self._map(lambda v: self._check(v, self._version_files(v)), todo)
        found = dict(zip(todo, checked, strict=True))
        records = {v: r for v, r in found.items() if isinstance(r, ExportMetadata)}
        return replace(
            state,
            committed=sorted([*state.committed, *records.values()], key=lambda m: m.version),
            invalid=sorted(
                [*state.invalid, *((v, r) for v, r in found.items() if isinstance(r, str))]
            ),
            stamps={**state.stamps, **{v: state.indexed[v].stamp for v in records}},
            indexed={v: row for v, row in state.indexed.items() if v not in found},
        )

    def write_index(self, state: ExporterDirState, *, deleted: Iterable[int] = ()) -> None:
        """Record the committed versions of `state` (checked and indexed, but `deleted`) with
        their stamps in the index file, unless it already holds exactly that (or there is
        neither a version nor an index). Run it under the exporter lock, with a state
        scanned under the same lock (as `retain` and the export flow do)."""
        gone = set(deleted)
        rows = [
            *(
                IndexedVersion.of(state.stamps[m.version], m)
                for m in state.committed
                if m.version in state.stamps and m.version not in gone
            ),
            *(row for version, row in state.indexed.items() if version not in gone),
        ]
        if self._index_exists is None:
            self._read_index()
        if self._index_holds(rows) or not (rows or self._index_exists):
            return
        self.storage.write_bytes(self._at(INDEX_NAME), encode_index(rows))
        self._index_exists = True
        self._index_rows = {str(row.version): row for row in rows}

    def _index_holds(self, rows: Sequence[IndexedVersion]) -> bool:
        """Whether the index as last read or written holds exactly `rows` (those a scan took
        from it are the very rows it decoded), so writing it would change nothing."""
        found = self._index_rows
        if found is None or len(found) != len(rows):
            return False
        for row in rows:
            before = found.get(str(row.version))
            if before is None or (before is not row and before.row != row.row):
                return False
        return True

    def _map(self, read: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
        """`read` over `items`: serially, or on as many threads as the storage says reads are
        worth running at once (`Storage.read_parallelism`)."""
        workers = min(self.storage.read_parallelism, len(items))
        if workers <= 1:
            return [read(item) for item in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(read, items))

    def _read_index(self) -> Mapping[str, IndexedVersion]:
        """The index's rows; none when it is absent or not whole (then every record is read)."""
        try:
            data = self.storage.read_bytes(self._at(INDEX_NAME))
        except StorageError:
            self._index_exists, self._index_rows = False, None
            return {}
        self._index_exists, self._index_rows = True, decode_index(data)
        return self._index_rows or {}

    def _version_files(self, version: int) -> dict[str, Entry]:
        try:
            return {e.name: e for e in self.storage.list_files(self.version_uri(version))}
        except StorageNotFoundError:
            return {}

    def _scan(
        self,
        now_seconds: float | None,
        *,
        read_foreign_steps: bool,
        known: Mapping[str, IndexedVersion],
    ) -> ExporterDirState:
        try:
            top = self.storage.list_dir_stamped(self.uri, METADATA_FILENAME)
        except StorageNotFoundError:
            return ExporterDirState()
        stamps: dict[int, str] = {}
        indexed: dict[int, IndexedVersion] = {}
        children = {e.name: _Child(e.name, e.is_dir, e.mtime, e.is_link) for e in top.others}
        for name, stamp in top.stamps.items():
            row = known.get(name)
            if row is not None and row.stamp == stamp:
                indexed[row.version] = row
                continue
            version = parse_version(name)
            if version is not None:
                stamps[version] = stamp
            children[name] = _Child(name, True, None)
        for entry in self._files_or_empty(
            self.uri, [c.name for c in children.values() if _walked(c)]
        ):
            head, _, rest = entry.name.partition("/")
            if rest and head in children:
                children[head].files[rest] = entry
        now = time.time() if now_seconds is None else now_seconds
        state = ExporterDirState(indexed=indexed)
        candidates: list[tuple[int, _Child]] = []
        foreign: list[tuple[int, _Child]] = []
        claims = self._our_claims(children.values())
        for child in children.values():
            version = parse_version(child.name)
            if child.is_link:
                if version is not None or is_beyond_versions(child.name):
                    state.invalid.append((int(child.name), self._link_message(child.name)))
                continue
            if version is None:
                if is_staging_name(child.name):
                    state.staging.append(self._temp_entry(child, now, claims))
                elif is_beyond_versions(child.name):
                    state.staging.append(_staging(child, now))
            elif not child.is_dir:
                message = f"{self._at(child.name)} is a file, not a version"
                state.invalid.append((version, message))
            elif METADATA_FILENAME in child.files:
                candidates.append((version, child))
            else:
                claim = claims.get(version)
                marked = DELETE_MARKER in child.files
                state.staging.append(_staging(child, now, claim, marked=marked))
                if claim is None and not marked:
                    foreign.append((version, child))
        checked = self._map(lambda vc: self._check(vc[0], vc[1].files), candidates)
        for (version, _child), result in zip(candidates, checked, strict=True):
            if isinstance(result, ExportMetadata):
                state.committed.append(result)
            elif result is not None:
                state.invalid.append((version, result))
        if read_foreign_steps:
            state.foreign_versions.extend(self._map(lambda vc: self._foreign(*vc), foreign))
        state.committed.sort(key=lambda m: m.version)
        state.invalid.sort()
        state.foreign_versions.sort(key=lambda f: f.version)
        committed = {m.version for m in state.committed}
        return replace(state, stamps={v: s for v, s in stamps.items() if v in committed})

    def _our_claims(self, children: Iterable[_Child]) -> dict[int, _Child]:
        """Version -> the claim object of its publish, for claims that hold our token (one
        small read each; claims exist only while a publish runs or after one died)."""
        named = [(v, c) for c in children if not c.is_dir and (v := claim_version(c.name))]
        bodies = self._map(lambda vc: self._read_or_none(vc[1].name), named)
        return {
            version: child
            for (version, child), body in zip(named, bodies, strict=True)
            if body is not None and is_claim_body(body)
        }

    def _temp_entry(self, child: _Child, now: float, claims: Mapping[int, _Child]) -> StagingDir:
        """A `temp-*` entry: a claim (ours when it holds our token), or a staging dir (ours
        in the forms of `core.ownership`; in use while a running export holds it)."""
        version = claim_version(child.name)
        if version is not None:
            marked = not child.is_dir and claims.get(version) is child
            return _staging(child, now, marked=marked)
        in_use = (
            child.is_dir
            and is_our_staging_name(child.name)
            and self.storage.staging_in_use(self._at(child.name))
        )
        return _staging(child, now, in_use=in_use)

    def _read_or_none(self, name: str) -> bytes | None:
        """The first bytes of a small object (a claim body is under 100 bytes), or None when
        it cannot be read: then it cannot be proven ours, and it and its version are kept."""
        try:
            return self.storage.read_bytes(self._at(name), 0, _CLAIM_READ_BYTES)
        except StorageError:
            return None

    def committed(self) -> list[ExportMetadata]:
        """Committed versions sorted by version (foreign versions' steps are not read)."""
        return self._scan(None, read_foreign_steps=False, known={}).committed

    def newest_committed(self) -> ExportMetadata | None:
        """The committed version with the highest number, or None: an indexed listing, then
        a full check of the newest (and of the next while one fails it)."""
        state = self._scan(None, read_foreign_steps=False, known=self._read_index())
        while (top := max(state.indexed, default=None)) is not None and (
            not state.committed or top > state.committed[-1].version
        ):
            state = self.confirm(state, [top])
        return state.committed[-1] if state.committed else None

    def verify(self, version: int) -> VerifiedVersion:
        """Read every file of `version` back and compare it with the manifest (size and
        CRC32C), and the record with its checksum; VersionIntegrityError names the first
        file or field that does not match. A record without checksum (from an earlier
        release) passes, and the result says so."""
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
        record = self._read_record(version, files)
        if isinstance(record, str):
            raise VersionIntegrityError(record)

        def read_chunks(path: str) -> Iterator[bytes]:
            size = files[path].size
            for start in range(0, size, CHUNK_BYTES):
                yield self.storage.read_bytes(
                    self.storage.join(uri, path), start, min(start + CHUNK_BYTES, size)
                )

        verify_files(uri, record.metadata.manifest, read_chunks)
        return record

    def retain(
        self, plan: Callable[[ExporterDirState], RetentionPlan], *, dry_run: bool = False
    ) -> tuple[ExporterDirState, RetentionPlan]:
        """Scan, `plan` and (unless `dry_run`) apply retention under the exporter lock, so
        that no export decides or publishes in between: the plan never meets a publish in
        flight, whatever its grace period. A dry run writes nothing, so it takes no lock
        (its plan may list a GCS publish in flight as abandoned); neither does a missing
        exporter dir (there is nothing to delete)."""
        if dry_run or not self.storage.exists(self.uri):
            state = self.scan()
            return state, plan(state)
        with self.storage.exporter_lock(self.uri):
            state = self.scan()
            planned = plan(state)
            self.apply(planned)
            self.write_index(state, deleted=planned.delete_versions)
        return state, planned

    def apply(self, plan: RetentionPlan) -> None:
        """Delete the plan's `delete_versions` (see `Storage.delete_versions`), then its
        `staging_delete`, then its `claim_delete` (a version whose claim went first would
        look foreign if the delete were cut short). Run it under the exporter lock, with a
        plan made from a scan under the same lock (as `retain` and the export flow do)."""
        for name in [*plan.staging_delete, *plan.claim_delete]:
            if parse_version(name) is None and not _may_be_ours(name):
                raise ValueError(
                    f"retention plan names {name!r}, which is neither a version nor an "
                    f"uncommitted entry this product creates in {self.uri}; nothing was deleted"
                )
        if plan.delete_versions:
            self.storage.delete_versions(self.uri, plan.delete_versions)
        for batch in (plan.staging_delete, plan.claim_delete):
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

        linked = [n for n, e in child.files.items() if e.is_link and _read_for_step(n)]
        if linked:
            link = self.storage.join(self.version_uri(version), min(linked))
            return ForeignVersion(version, unreadable=f"{link} is a symbolic link: never followed")
        try:
            step = saved_model_global_step(self.storage, self.version_uri(version), child.files)
        except (TensorBundleError, TableError) as err:
            return ForeignVersion(version, unreadable=str(err))
        return ForeignVersion(version, step)

    def _check(self, version: int, files: Mapping[str, Entry]) -> ExportMetadata | str | None:
        """The committed metadata, why the version is invalid, or None if it vanished or
        stopped being committed.

        A mismatch is confirmed by listing the version again: a publish or a delete may
        have run while the exporter directory was being listed (a scan outside the lock).
        """
        checked = self._read_record(version, files)
        if isinstance(checked, VerifiedVersion):
            return checked.metadata
        try:
            fresh = {e.name: e for e in self.storage.list_files(self.version_uri(version))}
        except StorageNotFoundError:
            return None
        if METADATA_FILENAME not in fresh:
            return None
        rechecked = self._read_record(version, fresh)
        return rechecked if isinstance(rechecked, str) else rechecked.metadata

    def _read_record(self, version: int, files: Mapping[str, Entry]) -> VerifiedVersion | str:
        """The metadata (with the checksum file it matched) if it parses, matches its
        checksum and matches the files by name and size; else why not."""
        links = sorted(name for name, entry in files.items() if entry.is_link)
        if links:
            return (
                f"{self.storage.join(self.version_uri(version), links[0])} is a symbolic link, "
                "which no published version holds: never followed"
            )
        source = self.storage.join(self.version_uri(version), METADATA_FILENAME)
        try:
            record = self.storage.read_bytes(source)
            meta = ExportMetadata.from_json(record, source=source)
            checksum = check_metadata_checksum(record, files, source)
        except StorageNotFoundError:
            return f"{source} does not exist"
        except MetadataError as err:
            return str(err)
        if meta.version != version:
            return f"{source} says version {meta.version}, but its directory is {version}"
        sizes = {name: e.size for name, e in files.items() if not is_record_file(name)}
        mismatch = manifest_mismatch(meta.manifest, sizes)
        if mismatch is not None:
            return f"{self.version_uri(version)}: {mismatch}"
        return VerifiedVersion(meta, checksum)

    def _files_or_empty(self, uri: str, within: Sequence[str]) -> Sequence[Entry]:
        if not within:
            return []
        try:
            return self.storage.list_files(uri, within=within)
        except StorageNotFoundError:
            return []

    def _link_message(self, name: str) -> str:
        return (
            f"{self._at(name)} is a symbolic link, not a version directory: never followed, "
            "kept as it is"
        )

    def _at(self, name: str) -> str:
        return self.storage.join(self.uri, name)


def _known(state: ExporterDirState) -> dict[str, IndexedVersion]:
    """The committed versions of an earlier scan with their stamps, as index rows."""
    known = {str(v): row for v, row in state.indexed.items()}
    for meta in state.committed:
        if meta.version in state.stamps:
            known[str(meta.version)] = IndexedVersion.of(state.stamps[meta.version], meta)
    return known


def _read_for_step(name: str) -> bool:
    """Whether reading a SavedModel's global step reads the file `name` (relative to it)."""
    return name in SAVED_MODEL_FILENAMES or name.startswith("variables/")


def _staging(
    child: _Child,
    now: float,
    claim: _Child | None = None,
    *,
    marked: bool = False,
    in_use: bool = False,
) -> StagingDir:
    """An uncommitted entry aged by its newest file, or its claim's if that is newer."""
    times = [t for c in (child, claim) if c is not None and (t := c.newest_mtime())]
    age = max(0.0, now - max(times)) if times else 0.0
    return StagingDir(
        child.name, age, None if claim is None else claim.name, marked=marked, in_use=in_use
    )


def _walked(child: _Child) -> bool:
    """Whether a scan lists the files below `child`: a version directory (its files decide
    whether it is committed) or a staging dir of ours (aged by its newest file). Nothing
    else is entered, and no symbolic link: a foreign entry never costs or blocks a scan."""
    if not child.is_dir or child.is_link:
        return False
    return parse_version(child.name) is not None or is_our_staging_name(child.name)


def _may_be_ours(name: str) -> bool:
    """Whether an uncommitted name has a form this product creates (a staging dir or a
    claim); what proves a claim ours is its content, checked by the scan."""
    return is_our_staging_name(name) or claim_version(name) is not None
