"""The GCS backend over an injected google-cloud-storage client.

Objects cannot be renamed, so a version is published in place, in an order that keeps
readers safe:

1. claim the version with a create-only object `<exporter>/temp-claim-<version>`
   (`ifGenerationMatch=0`) holding `{"token": "<32 hex>"}`; a writer that loses the claim
   moves on to the next version. The claim lives outside the integer prefix, so TF Serving
   never sees it, and its content proves it ours, so retention removes it (and the partial
   version it claims) if a writer dies;
2. upload every SavedModel file except `saved_model.pb(txt)` in parallel (transfer manager);
3. upload `saved_model.pb(txt)`: TF Serving treats it as "the model is complete";
4. upload the record's checksum `export_metadata.json.sha256-<hex>` (empty), then
   `export_metadata.json`: from now on the version is committed;
5. delete the claim (one request).

Every upload is create-only too, so even a second writer on the same version gets HTTP 412
instead of mixing files. Deleting a version runs the other way round with a marker first,
see `delete_versions`. Listing uses prefix + delimiter (one request per page); deletes and
copies go in batch requests of up to 100 calls.

Claims keep versions distinct, but the export flow also needs decide-and-publish to be
exclusive (two Latest exports of one checkpoint must not both publish; a Best export must
not publish a model that stopped being the best), and retention must never meet a publish
in flight. `exporter_lock` is a lease on the create-only object
`<exporter>/.airflow-tf-export.lock`, see `GcsStorage.exporter_lock`.
All of this relies on GCS enforcing `ifGenerationMatch`; the gcp-storage-emulator used in
tests does not, so tests that depend on it run through a proxy that enforces it.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import json
import logging
import os
import posixpath
import random
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from airflow_tf_export.core.metadata import (
    METADATA_FILENAME,
    ExportMetadata,
    ManifestEntry,
    is_metadata_checksum_name,
    metadata_checksum_name,
)
from airflow_tf_export.core.ownership import DELETE_MARKER, claim_body, claim_name, claim_version
from airflow_tf_export.core.versions import VersionRangeError, next_version, parse_version
from airflow_tf_export.storage.base import (
    EXPORTER_LOCK_NAME,
    BucketNotFoundError,
    Entry,
    FileInfo,
    StampedListing,
    StorageError,
    StorageNotFoundError,
    VersionedBytes,
)
from airflow_tf_export.storage.local_tree import regular_files
from airflow_tf_export.storage.manifest import (
    SAVED_MODEL_FILENAMES,
    build_manifest,
    check_publishable,
)
from airflow_tf_export.storage.uris import StorageUri, parse_pattern, parse_uri

BATCH_LIMIT = 100
_GLOB_CHARS = frozenset("*?[")
_MAX_CLAIM_ATTEMPTS = 100
_MAX_VERSIONED_READS = 5
_LISTED_APART = 4
DEFAULT_LOCK_LEASE_SECONDS = 60.0
DEFAULT_LOCK_TIMEOUT_SECONDS = 1800.0
_LOCK_MAX_BACKOFF_SECONDS = 2.0

log = logging.getLogger(__name__)


def _crc32c_hex(blob: Any) -> str | None:
    return base64.b64decode(blob.crc32c).hex() if blob.crc32c else None


def _mtime(blob: Any) -> float | None:
    return blob.updated.timestamp() if blob.updated is not None else None


def _is_within(name: str, roots: set[str]) -> bool:
    """Whether object `name` is one of `roots` or below one of them."""
    parts = name.split("/")
    return any("/".join(parts[:depth]) in roots for depth in range(1, len(parts) + 1))


def _deletion_order(names: Sequence[str]) -> Iterator[Sequence[str]]:
    """Batches of object names in four phases, each after the one before:
    `export_metadata.json` and its checksum (the version stops being committed while all
    its files still exist), `saved_model.pb(txt)` (TF Serving stops finding a model while
    its variables still exist), every other file, and our delete markers last (what a delete
    cut short leaves stays provably ours). Batches are not ordered inside."""
    phases: tuple[list[str], ...] = ([], [], [], [])
    for name in names:
        base = posixpath.basename(name)
        if base == METADATA_FILENAME or is_metadata_checksum_name(base):
            phases[0].append(name)
        elif base in SAVED_MODEL_FILENAMES:
            phases[1].append(name)
        elif base == DELETE_MARKER:
            phases[3].append(name)
        else:
            phases[2].append(name)
    for phase_names in phases:
        yield from _chunks(phase_names, BATCH_LIMIT)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class GcsStorage:
    """Storage on Google Cloud Storage; URIs are `gs://bucket/prefix`."""

    def __init__(
        self,
        client: Any,
        *,
        max_workers: int = 8,
        lock_lease_seconds: float = DEFAULT_LOCK_LEASE_SECONDS,
        lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    ) -> None:
        if not lock_lease_seconds > 0 or not lock_timeout_seconds >= 0:
            raise ValueError(
                f"lock_lease_seconds must be > 0 and lock_timeout_seconds >= 0, got "
                f"{lock_lease_seconds!r} and {lock_timeout_seconds!r}"
            )
        self._client = client
        self._max_workers = max_workers
        self._lock_lease = lock_lease_seconds
        self._lock_timeout = lock_timeout_seconds
        # Exporter dirs whose lock this storage held and lost (see exporter_lock).
        self._lost_locks: set[str] = set()

    @property
    def read_parallelism(self) -> int:
        """`max_workers`: each read is a round trip, so reads overlap."""
        return self._max_workers

    def join(self, base: str, *parts: str) -> str:
        """`gs://bucket/prefix/part/...`; the parts are taken literally (a glob's '?' stays)."""
        parsed = self._parse(base)
        return str(parse_pattern("/".join([str(parsed), *parts])))

    def list_dir(self, uri: str) -> list[Entry]:
        """Direct children of a prefix (one listing request per page)."""
        parsed = self._parse(uri)
        prefix = f"{parsed.path}/" if parsed.path else ""
        with self._errors(parsed):
            iterator = self._client.list_blobs(parsed.bucket, prefix=prefix, delimiter="/")
            entries = [
                Entry(blob.name[len(prefix) :], False, blob.size or 0, _mtime(blob))
                for blob in iterator
                if blob.name != prefix
            ]
            entries += [Entry(p[len(prefix) :].rstrip("/"), True) for p in iterator.prefixes]
        if not entries:
            self._raise_absent_dir(parsed)
        return sorted(entries, key=lambda e: e.name)

    def list_dir_stamped(self, uri: str, file_name: str) -> StampedListing:
        """One listing of every object below the prefix (a request per 1,000 objects): the
        direct children, each child prefix holding the object `file_name` stamped with its
        generation."""
        parsed = self._parse(uri)
        prefix = f"{parsed.path}/" if parsed.path else ""
        files: list[Entry] = []
        stamps: dict[str, str | None] = {}
        for blob in self._list_blobs(parsed, prefix):
            name = blob.name[len(prefix) :]
            child, slash, rest = name.partition("/")
            if not slash:
                if name:
                    files.append(Entry(name, False, blob.size or 0, _mtime(blob)))
                continue
            stamp = str(blob.generation) if rest == file_name else None
            stamps[child] = stamps.get(child) or stamp
        if not files and not stamps:
            self._raise_absent_dir(parsed)
        files += [Entry(name, True) for name, stamp in stamps.items() if stamp is None]
        stamped = {name: stamp for name, stamp in stamps.items() if stamp is not None}
        return StampedListing(stamped, sorted(files, key=lambda e: e.name))

    def list_files(self, uri: str, *, within: Collection[str] | None = None) -> list[Entry]:
        """Every object below a prefix, names relative with `/`, sorted. With `within`: below
        those children only, one listing of the prefix (a request per 1,000 objects), or one
        per child when there are at most `_LISTED_APART` of them (a scan that reads a few
        new versions of a large exporter dir)."""
        parsed = self._parse(uri)
        prefix = f"{parsed.path}/" if parsed.path else ""
        apart = within is not None and len(within) <= _LISTED_APART
        if within is not None and apart:
            blobs = [b for c in sorted(within) for b in self._list_blobs(parsed, f"{prefix}{c}/")]
        else:
            blobs = self._list_blobs(parsed, prefix)
        entries = [
            Entry(blob.name[len(prefix) :], False, blob.size or 0, _mtime(blob))
            for blob in blobs
            if not blob.name.endswith("/")
        ]
        if not entries and (not apart or not self._list_blobs(parsed, prefix, max_results=1)):
            self._raise_absent_dir(parsed)
        if within is not None:
            entries = [e for e in entries if e.name.partition("/")[0] in within]
        return sorted(entries, key=lambda e: e.name)

    def glob(self, pattern: str) -> list[str]:
        """Objects matching `pattern` (`*` stays within one segment); lists only below the
        literal part of the pattern."""
        return [info.uri for info in self.glob_info(pattern)]

    def glob_info(self, pattern: str) -> list[FileInfo]:
        """`glob` with each object's size and update time, taken from the listing itself."""
        parsed = self._parse(pattern, parse=parse_pattern)
        segments = parsed.path.split("/")
        first_glob = next(
            (i for i, s in enumerate(segments) if _GLOB_CHARS & set(s)), len(segments)
        )
        if first_glob == len(segments):
            with self._errors(parsed):
                blob = self._client.bucket(parsed.bucket).get_blob(parsed.path)
            return (
                [] if blob is None else [FileInfo(str(parsed), int(blob.size or 0), _mtime(blob))]
            )
        head = segments[first_glob]
        literal = head[: min(head.index(c) for c in _GLOB_CHARS if c in head)]
        prefix = "/".join([*segments[:first_glob], literal])
        last_segment = first_glob == len(segments) - 1
        matches = []
        for blob in self._list_blobs(parsed, prefix, delimiter="/" if last_segment else None):
            names = blob.name.split("/")
            if len(names) == len(segments) and all(
                fnmatch.fnmatchcase(n, s) for n, s in zip(names, segments, strict=True)
            ):
                uri = f"gs://{parsed.bucket}/{blob.name}"
                matches.append(FileInfo(uri, int(blob.size or 0), _mtime(blob)))
        return sorted(matches, key=lambda info: info.uri)

    def exists(self, uri: str) -> bool:
        """Whether an object, or any object below the prefix, exists."""
        parsed = self._parse(uri)
        if parsed.path and self._blob_exists(parsed):
            return True
        prefix = f"{parsed.path}/" if parsed.path else ""
        with self._errors(parsed):
            return any(self._client.list_blobs(parsed.bucket, prefix=prefix, max_results=1))

    def size(self, uri: str) -> int:
        """Size of an object in bytes (one metadata request)."""
        parsed = self._parse(uri)
        with self._errors(parsed):
            blob = self._client.bucket(parsed.bucket).get_blob(parsed.path)
        if blob is None:
            self._raise_not_found(parsed)
        return int(blob.size or 0)

    def read_bytes(self, uri: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `[start, end)` of an object: a ranged GET (whole objects are checksummed)."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid byte range [{start}, {end}) for {uri}")
        if end == start:
            return b""
        parsed = self._parse(uri)
        blob = self._client.bucket(parsed.bucket).blob(parsed.path)
        from google.api_core.exceptions import RequestRangeNotSatisfiable

        with self._errors(parsed):
            try:
                data: bytes = blob.download_as_bytes(
                    start=start or None, end=None if end is None else end - 1
                )
            except RequestRangeNotSatisfiable:
                return b""
        return data

    def write_bytes(self, uri: str, data: bytes) -> None:
        """One upload request: readers see the old or the new object, never a mix."""
        parsed = self._parse(uri)
        with self._errors(parsed):
            self._client.bucket(parsed.bucket).blob(parsed.path).upload_from_string(data)

    def read_versioned(self, uri: str) -> VersionedBytes:
        """The object and its generation: its metadata, then a download of exactly that
        generation (`ifGenerationMatch`; read again if it was replaced in between)."""
        from google.api_core.exceptions import PreconditionFailed

        parsed = self._parse(uri)
        bucket = self._client.bucket(parsed.bucket)
        for _attempt in range(_MAX_VERSIONED_READS):
            with self._errors(parsed):
                blob = bucket.get_blob(parsed.path)
                if blob is None:
                    self._raise_not_found(parsed)
                generation = int(blob.generation)
                try:
                    data: bytes = blob.download_as_bytes(if_generation_match=generation)
                except PreconditionFailed:
                    continue
            return VersionedBytes(data, str(generation))
        raise StorageError(
            f"{parsed} was replaced during each of {_MAX_VERSIONED_READS} reads; retry later"
        )

    def replace_if_unchanged(self, uri: str, data: bytes, generation: str) -> bool:
        """One upload with `ifGenerationMatch=<generation>`: GCS writes it only over that
        generation, atomically. A 412 means another writer changed or removed the object,
        unless the object now holds exactly `data` (our own retried request succeeded)."""
        from google.api_core.exceptions import PreconditionFailed

        parsed = self._parse(uri)
        blob = self._client.bucket(parsed.bucket).blob(parsed.path)
        with self._errors(parsed):
            try:
                blob.upload_from_string(data, if_generation_match=int(generation))
            except PreconditionFailed:
                current = self._client.bucket(parsed.bucket).get_blob(parsed.path)
                return current is not None and bool(current.download_as_bytes() == data)
        return True

    def download_dir(self, uri: str, local_dir: Path, names: Iterable[str] | None = None) -> None:
        """Download objects below `uri` (all, or only the relative `names`) in parallel; a
        failure names the first object that failed."""
        from google.cloud.storage import transfer_manager

        parsed = self._parse(uri)
        wanted = [e.name for e in self.list_files(uri)] if names is None else list(names)
        bucket = self._client.bucket(parsed.bucket)
        pairs = []
        for name in wanted:
            target = local_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            pairs.append((bucket.blob(f"{parsed.path}/{name}"), str(target)))
        with self._errors(parsed):
            results = transfer_manager.download_many(
                pairs,
                worker_type=transfer_manager.THREAD,
                max_workers=self._max_workers,
                raise_exception=False,
            )
        for name, result in zip(wanted, results, strict=True):
            self._raise_first_failure(self._parse(self.join(uri, name)), [result])

    @contextmanager
    def local_files(self, uri: str, names: Sequence[str]) -> Iterator[Path]:
        """The named objects downloaded into a temporary directory, removed on exit."""
        with tempfile.TemporaryDirectory(prefix="tf-export-files-") as local:
            self.download_dir(uri, Path(local), names)
            yield Path(local)

    def upload_dir(self, local_dir: Path, uri: str) -> None:
        """Upload a local tree below `uri` in parallel (no ordering guarantees);
        SymbolicLinkError, nothing uploaded, when the tree holds a symbolic link."""
        parsed = self._parse(uri)
        paths = regular_files(local_dir)
        self._upload_files(parsed, local_dir, [p.relative_to(local_dir).as_posix() for p in paths])

    def delete_trees(self, uris: Sequence[str]) -> None:
        """Delete objects and prefixes: one listing below their common prefix, then batch
        requests of up to 100 deletes each, in the phases of `_deletion_order`. Objects
        already gone are ignored."""
        by_bucket: dict[str, list[str]] = {}
        for uri in uris:
            parsed = self._parse(uri)
            if not parsed.path:
                raise ValueError(f"refusing to delete the whole bucket {uri!r}")
            by_bucket.setdefault(parsed.bucket, []).append(parsed.path)
        for bucket, names in by_bucket.items():
            self._delete_below(StorageUri("gs", bucket, posixpath.commonpath(names)), names)

    def delete_versions(self, exporter_uri: str, versions: Sequence[int]) -> None:
        """Copy each version's `export_metadata.json` to its delete marker
        `<version>/.airflow-tf-export-deleting` (batched server-side copies), then delete in
        the phases of `_deletion_order`: one listing, batch requests of up to 100 deletes.

        A delete cut short leaves a version that is either still committed (with a stale
        marker, ignored) or uncommitted with the marker: ours, cleaned up by retention. The
        two reader invariants hold throughout: `export_metadata.json` is gone before any
        file it lists, and `saved_model.pb` before any variable.
        """
        if not versions:
            return
        exporter = self._parse(exporter_uri)
        self._check_lock_kept(exporter)
        roots = {self._child(exporter, str(v)).path for v in versions}
        prefix = f"{exporter.path}/" if exporter.path else ""
        doomed = [b.name for b in self._list_blobs(exporter, prefix) if _is_within(b.name, roots)]
        records = [
            n
            for n in doomed
            if posixpath.dirname(n) in roots and posixpath.basename(n) == METADATA_FILENAME
        ]
        markers = {f"{posixpath.dirname(n)}/{DELETE_MARKER}": n for n in records}
        bucket = self._client.bucket(exporter.bucket)
        for chunk in _chunks(list(markers), BATCH_LIMIT):
            with self._errors(exporter), self._client.batch(raise_exception=True):
                for marker in chunk:
                    bucket.copy_blob(bucket.blob(markers[marker]), bucket, marker)
        self._delete_names(exporter, sorted({*doomed, *markers}))

    def staging_in_use(self, uri: str) -> bool:
        """Always False: staging dirs are local, and publishes run under the exporter lock."""
        self._parse(uri)
        return False

    @contextmanager
    def staging_dir(self, exporter_uri: str) -> Iterator[Path]:
        """A local temporary directory (removed on exit); publishing uploads from it."""
        self._parse(exporter_uri)
        with tempfile.TemporaryDirectory(prefix="airflow-tf-export-") as directory:
            yield Path(directory)

    @contextmanager
    def exporter_lock(self, exporter_uri: str) -> Iterator[None]:
        """An exclusive lease on `<exporter>/.airflow-tf-export.lock` (waits for it).

        Acquire: create the lock object with `ifGenerationMatch=0`; while another writer
        holds it, retry with backoff, up to `lock_timeout_seconds` (then StorageError). The
        object records its owner and `expires_at` (now + `lock_lease_seconds`); the holder
        renews it every third of the lease, so a live holder keeps it however long its
        publish takes. If renewing fails until the lease expires (a GCS outage), the lock
        counts as lost: `publish_version` into that exporter dir then raises a (retryable)
        StorageError instead of publishing. A holder that died leaves a lock that expires: a
        waiter then deletes
        it with `ifGenerationMatch=<its generation>`, so of two waiters only one removes it,
        and neither can remove a lock renewed or re-taken meanwhile. Release deletes the
        lock with the holder's generation. Expiry compares wall clocks, which must agree to
        well within a lease.
        """
        exporter = self._parse(exporter_uri)
        lock = self._child(exporter, EXPORTER_LOCK_NAME)
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        held = [self._acquire_lock(lock, owner)]
        expires_at = [time.time() + self._lock_lease]
        released = threading.Event()

        def keep_renewing() -> None:
            while not released.wait(self._lock_lease / 3):
                try:
                    renewed = self._write_lock(lock, owner, held[0])
                except StorageError as err:
                    log.warning("could not renew the exporter lock %s: %s", lock, err)
                    if time.time() < expires_at[0]:
                        continue
                    renewed = None  # expired: another writer may take it over now
                if renewed is None:
                    log.error("lost the exporter lock %s: its lease expired", lock)
                    self._lost_locks.add(str(exporter))
                    return
                held[0] = renewed
                expires_at[0] = time.time() + self._lock_lease

        keeper = threading.Thread(target=keep_renewing, name=f"lease {lock}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            released.set()
            keeper.join()
            self._lost_locks.discard(str(exporter))
            self._release_lock(lock, held[0])

    def _acquire_lock(self, lock: StorageUri, owner: str) -> int:
        """Create the lock object, waiting for a live holder or removing an expired one;
        return the generation we hold."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        started = time.monotonic()
        backoff = 0.05
        while True:
            generation = self._write_lock(lock, owner, 0)
            if generation is not None:
                return generation
            with self._errors(lock):
                current = self._client.bucket(lock.bucket).get_blob(lock.path)
            if current is None:
                continue
            expires_at = self._lock_expiry(current)
            if expires_at < time.time():
                log.warning("taking over the expired exporter lock %s (%s)", lock, current.metadata)
                with self._errors(lock), contextlib.suppress(NotFound, PreconditionFailed):
                    current.delete(if_generation_match=current.generation)
                continue
            waited = time.monotonic() - started
            if waited >= self._lock_timeout:
                holder = (current.metadata or {}).get("owner", "unknown")
                raise StorageError(
                    f"timed out after {waited:.1f}s waiting for the exporter lock {lock} "
                    f"(held by {holder}, lease until {time.ctime(expires_at)})"
                )
            time.sleep(min(backoff * random.uniform(0.5, 1.0), self._lock_timeout - waited))
            backoff = min(backoff * 2, _LOCK_MAX_BACKOFF_SECONDS)

    def _write_lock(self, lock: StorageUri, owner: str, generation_match: int) -> int | None:
        """Create (`generation_match=0`) or renew (our generation) the lock object with a
        fresh expiry; its new generation, or None when another writer holds it."""
        from google.api_core.exceptions import PreconditionFailed

        expires_at = time.time() + self._lock_lease
        info = {"owner": owner, "expires_at": f"{expires_at:.3f}"}
        from google.cloud.storage.retry import DEFAULT_RETRY

        blob = self._client.bucket(lock.bucket).blob(lock.path)
        blob.metadata = info
        with self._errors(lock):
            try:
                blob.upload_from_string(
                    json.dumps(info).encode(),
                    content_type="application/json",
                    if_generation_match=generation_match,
                    # A renewal retried past a third of the lease would be too late anyway.
                    retry=(
                        DEFAULT_RETRY.with_timeout(self._lock_lease / 3)
                        if generation_match
                        else DEFAULT_RETRY
                    ),
                )
            except PreconditionFailed:
                # A retried request whose first attempt succeeded also gets 412: then
                # the object holds exactly what this call wrote.
                current = self._client.bucket(lock.bucket).get_blob(lock.path)
                mine = current is not None and current.metadata == info
                return int(current.generation) if mine else None
        return int(blob.generation)

    def _lock_expiry(self, blob: Any) -> float:
        """When a lock object's lease ends (its last update + lease if it records none)."""
        try:
            return float((blob.metadata or {})["expires_at"])
        except (KeyError, ValueError):
            return (_mtime(blob) or 0.0) + self._lock_lease

    def _release_lock(self, lock: StorageUri, generation: int) -> None:
        """Delete the lock if it is still the generation we hold. A failure only logs: an
        exception may already be propagating, and the lease expires on its own."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        try:
            with self._errors(lock), contextlib.suppress(NotFound, PreconditionFailed):
                blob = self._client.bucket(lock.bucket).blob(lock.path)
                blob.delete(if_generation_match=generation)
        except StorageError as err:
            log.warning("could not release the exporter lock %s (it expires): %s", lock, err)

    def publish_version(
        self,
        source_dir: Path,
        exporter_uri: str,
        metadata: ExportMetadata,
        *,
        now_seconds: int | None = None,
    ) -> ExportMetadata:
        """Claim a version, upload the SavedModel (`saved_model.pb` last), then the metadata.
        Refused when this storage held the exporter lock of `exporter_uri` and lost it."""
        check_publishable(source_dir)
        exporter = self._parse(exporter_uri)
        self._check_lock_kept(exporter)
        manifest = build_manifest(source_dir)
        token = uuid.uuid4().hex
        version, claim = self._claim_next_version(exporter, token, now_seconds)
        published = metadata.with_publication(version, manifest)
        version_uri = self._child(exporter, str(version))
        model_files = [e.path for e in manifest if e.path in SAVED_MODEL_FILENAMES]
        other_files = [e.path for e in manifest if e.path not in SAVED_MODEL_FILENAMES]
        self._upload_files(version_uri, source_dir, other_files, manifest, create_only=True)
        self._upload_files(version_uri, source_dir, model_files, manifest, create_only=True)
        record = published.to_json().encode()
        checksum_uri = self._child(version_uri, metadata_checksum_name(record))
        metadata_uri = self._child(version_uri, METADATA_FILENAME)
        self._check_lock_kept(exporter)
        for target, data, content_type in (
            (checksum_uri, b"", "text/plain"),
            (metadata_uri, record, "application/json"),
        ):
            if not self._create_object(target, data, content_type):
                raise StorageError(f"{target} was created by another writer")
        self._delete_claim(claim)
        return published

    def _check_lock_kept(self, exporter: StorageUri) -> None:
        """StorageError (retryable) when this storage held the exporter lock of `exporter`
        and lost it: another writer or retention may be acting there now."""
        if str(exporter) in self._lost_locks:
            raise StorageError(
                f"lost the exporter lock of {exporter} (its lease expired while renewing "
                "failed), so another writer may be deciding: not publishing or deleting; "
                "retry the task"
            )

    def _claim_next_version(
        self, exporter: StorageUri, token: str, now_seconds: int | None
    ) -> tuple[int, StorageUri]:
        try:
            children = self.list_dir(str(exporter))
        except StorageNotFoundError:
            children = []
        taken = {
            number
            for entry in children
            if (number := parse_version(entry.name) or claim_version(entry.name)) is not None
        }
        body = claim_body(token)
        for _attempt in range(_MAX_CLAIM_ATTEMPTS):
            now = int(time.time()) if now_seconds is None else now_seconds
            try:
                version = next_version(taken, now)
            except VersionRangeError as err:
                raise VersionRangeError(f"cannot publish into {exporter}: {err}") from None
            claim = self._child(exporter, claim_name(version))
            if self._create_object(claim, body, "application/json"):
                return version, claim
            taken.add(version)
        raise StorageError(
            f"could not claim a version in {exporter}: {_MAX_CLAIM_ATTEMPTS} versions in a row "
            "were claimed by other writers"
        )

    def _delete_claim(self, claim: StorageUri) -> None:
        """One DELETE; a claim already gone (removed by retention) is fine."""
        from google.api_core.exceptions import NotFound

        with self._errors(claim), contextlib.suppress(NotFound):
            self._client.bucket(claim.bucket).blob(claim.path).delete()

    def _create_object(self, target: StorageUri, data: bytes, content_type: str) -> bool:
        """Create-only upload; False when the object already exists with other content.

        A retried request whose first attempt already succeeded also gets 412, so an
        object holding exactly `data` counts as ours.
        """
        from google.api_core.exceptions import PreconditionFailed

        blob = self._client.bucket(target.bucket).blob(target.path)
        with self._errors(target):
            try:
                blob.upload_from_string(data, content_type=content_type, if_generation_match=0)
            except PreconditionFailed:
                return bool(blob.download_as_bytes() == data)
        return True

    def _upload_files(
        self,
        root: StorageUri,
        local_dir: Path,
        names: Sequence[str],
        manifest: Sequence[ManifestEntry] = (),
        *,
        create_only: bool = False,
    ) -> None:
        """Upload local files in parallel with the transfer manager. With `create_only`,
        a 412 for an object that already holds the manifest's CRC32C (our own retried
        request) is accepted; anything else fails naming the object."""
        if not names:
            return
        from google.api_core.exceptions import PreconditionFailed
        from google.cloud.storage import transfer_manager

        bucket = self._client.bucket(root.bucket)
        prefix = f"{root.path}/" if root.path else ""
        blobs = [bucket.blob(prefix + name) for name in names]
        kwargs: dict[str, Any] = {"if_generation_match": 0} if create_only else {}
        with self._errors(root):
            results = transfer_manager.upload_many(
                [(str(local_dir / name), blob) for name, blob in zip(names, blobs, strict=True)],
                upload_kwargs=kwargs,
                worker_type=transfer_manager.THREAD,
                max_workers=self._max_workers,
                raise_exception=False,
            )
        expected = {entry.path: entry.crc32c for entry in manifest}
        for name, blob, result in zip(names, blobs, results, strict=True):
            if isinstance(result, PreconditionFailed):
                with self._errors(root):
                    blob.reload()
                if _crc32c_hex(blob) == expected.get(name):
                    continue
                raise StorageError(
                    f"gs://{root.bucket}/{prefix}{name} was created by another writer "
                    "(create-only upload)"
                )
            if isinstance(result, Exception):
                self._raise_first_failure(root, [result])

    def _delete_below(self, common: StorageUri, names: Sequence[str]) -> None:
        wanted = set(names)
        doomed = [
            blob.name
            for blob in self._list_blobs(common, common.path)
            if _is_within(blob.name, wanted)
        ]
        self._delete_names(common, doomed)

    def _delete_names(self, common: StorageUri, doomed: Sequence[str]) -> None:
        """Delete objects (all below `common`) in `_deletion_order`; ones already gone are
        fine, others that remain raise StorageError."""
        from google.api_core.exceptions import NotFound

        bucket = self._client.bucket(common.bucket)
        some_were_gone = False
        for chunk in _deletion_order(doomed):
            with self._errors(common):
                try:
                    with self._client.batch(raise_exception=True):
                        for name in chunk:
                            bucket.blob(name).delete()
                except NotFound:
                    some_were_gone = True
        if some_were_gone:
            wanted = set(doomed)
            left = [b.name for b in self._list_blobs(common, common.path) if b.name in wanted]
            if left:
                raise StorageError(f"could not delete gs://{common.bucket}/{left[0]}")

    def _list_blobs(
        self,
        parsed: StorageUri,
        prefix: str,
        delimiter: str | None = None,
        max_results: int | None = None,
    ) -> list[Any]:
        with self._errors(parsed):
            return list(
                self._client.list_blobs(
                    parsed.bucket, prefix=prefix, delimiter=delimiter, max_results=max_results
                )
            )

    def _blob_exists(self, parsed: StorageUri) -> bool:
        with self._errors(parsed):
            return bool(self._client.bucket(parsed.bucket).blob(parsed.path).exists())

    def _raise_absent_dir(self, parsed: StorageUri) -> None:
        if parsed.path and self._blob_exists(parsed):
            raise StorageError(f"{parsed} is an object (a file), expected a directory")
        self._raise_not_found(parsed)

    def _raise_not_found(self, parsed: StorageUri) -> None:
        with self._errors(parsed):
            bucket_exists = self._client.bucket(parsed.bucket).exists()
        if not bucket_exists:
            raise BucketNotFoundError(f"bucket {parsed.bucket!r} of {parsed} does not exist")
        raise StorageNotFoundError(f"{parsed} does not exist")

    def _raise_first_failure(self, parsed: StorageUri, results: Iterable[object]) -> None:
        for result in results:
            if isinstance(result, BaseException):
                with self._errors(parsed):
                    raise result

    @contextmanager
    def _errors(self, parsed: StorageUri) -> Iterator[None]:
        """Turn google-api-core and transport errors into StorageError subclasses naming
        the URI. A transient failure the client's own retries did not outlast (RetryError,
        no connection, timeouts) is a plain StorageError: the task may retry later."""
        import requests
        from google.api_core.exceptions import (
            Forbidden,
            GoogleAPICallError,
            NotFound,
            PreconditionFailed,
            RetryError,
        )
        from google.auth.exceptions import TransportError

        try:
            yield
        except PreconditionFailed:
            raise
        except NotFound:
            self._raise_not_found(parsed)
        except Forbidden as err:
            raise StorageError(f"{parsed} is not accessible: {err.message}") from None
        except GoogleAPICallError as err:
            raise StorageError(f"{parsed}: GCS request failed: {err}") from None
        except (
            RetryError,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            TransportError,
        ) as err:
            raise StorageError(
                f"{parsed}: GCS unreachable (transient, retry later): {err}"
            ) from None

    @staticmethod
    def _child(parent: StorageUri, name: str) -> StorageUri:
        return StorageUri(parent.scheme, parent.bucket, f"{parent.path}/{name}".lstrip("/"))

    @staticmethod
    def _parse(uri: str, parse: Callable[[str], StorageUri] = parse_uri) -> StorageUri:
        parsed = parse(uri)
        if not parsed.is_gcs:
            raise ValueError(f"GCS storage cannot handle the local path {uri!r}")
        return parsed
