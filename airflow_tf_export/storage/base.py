"""The one Storage protocol that local disk and GCS implement.

Paths are URIs: a local absolute path (or `file://` URI) or `gs://bucket/prefix`. Everything
above this package speaks only this protocol, so local/GCS differences stay here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from airflow_tf_export.core.metadata import ExportMetadata

# The exporter lock's name in the exporter dir (a file on local disk, an object on GCS):
# neither a version (all digits) nor a `temp-` name, so scans and retention ignore it and
# TF Serving never sees it.
EXPORTER_LOCK_NAME = ".airflow-tf-export.lock"


class StorageError(Exception):
    """A storage operation failed; the message names the URI."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """The URI (file, directory or prefix) does not exist."""


class BucketNotFoundError(StorageError):
    """The GCS bucket does not exist: a configuration error, never read as "empty"."""


class VersionIntegrityError(StorageError):
    """A version's files do not match its manifest, or its metadata cannot be read."""


class SymbolicLinkError(StorageError, ValueError):
    """A symbolic link where this product never follows one: in a SavedModel being published,
    or in a local tree being copied. Bad input (a ValueError): retrying cannot help."""


@dataclass(frozen=True)
class WrittenModel:
    """What a SavedModel writer reports about the directory it wrote.

    `tags` are the MetaGraph tag sets written, in order (e.g. ("serve",) or ("train",
    "eval", "serve")) and `signature_keys` maps each tag set, joined with ",", to its
    signature keys. The export flow copies both into the version's `export_metadata.json`.
    `checkpoint_path` and `global_step` are the checkpoint the writer restored and the step
    read from it (None from a writer that restores none, e.g. a test writer).
    """

    tags: tuple[str, ...] = ("serve",)
    signature_keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    checkpoint_path: str | None = None
    global_step: int | None = None


@dataclass(frozen=True)
class VersionedBytes:
    """A whole file's content and its generation: an opaque token that changes whenever the
    file is written (GCS: the object generation; local disk: inode, mtime and a digest)."""

    data: bytes
    generation: str


@dataclass(frozen=True)
class Entry:
    """One child of a directory: a file (with size) or a sub-directory.

    `is_link`: a symbolic link (local disk only). `list_dir` gives a link that resolves the
    kind, size and time of its target, and one that does not (dangling, a loop) as a file of
    size 0; `list_files` never follows one (size and time are the link's own).
    """

    name: str
    is_dir: bool
    size: int = 0
    mtime: float | None = None
    is_link: bool = False


@dataclass(frozen=True)
class StampedListing:
    """A directory listed by `list_dir_stamped`: `stamps` maps each child directory holding
    the file asked about (a regular file, reached without following a link) to that file's
    stamp, an opaque token that changes whenever the file is rewritten or replaced; `others`
    holds every other child as `list_dir` lists it."""

    stamps: dict[str, str]
    others: list[Entry]


@dataclass(frozen=True)
class FileInfo:
    """A file found by `glob_info`: its URI, size in bytes and modification time (seconds
    since the epoch; GCS: the object's last update, which a rewrite changes too)."""

    uri: str
    size: int
    mtime: float | None = None


class Storage(Protocol):
    """Listing, reading, writing, publishing and deleting under one URI scheme."""

    @property
    def read_parallelism(self) -> int:
        """How many small reads are worth running at once: 1 on local disk (threads are
        slower there than reading one file after another), more on GCS (each read is a
        round trip)."""
        ...

    def join(self, base: str, *parts: str) -> str:
        """`base/part/...` in this backend's URI form."""
        ...

    def list_dir(self, uri: str) -> list[Entry]:
        """Direct children of a directory, sorted by name; StorageNotFoundError if it is absent.
        A child that cannot be read (a symbolic link loop) is listed, never an error."""
        ...

    def list_dir_stamped(self, uri: str, file_name: str) -> StampedListing:
        """`list_dir`'s children: the directories (never a link) holding a regular file
        `file_name`, each with that file's stamp (their own kind and time are not read), and
        every other child as `list_dir` lists it.

        The stamp changes whenever the file is rewritten or replaced: local disk, the
        directory's and the file's inode, the file's size and modification time in
        nanoseconds (one `stat` per child directory, none per other file); GCS, the object's
        generation (one listing of every object below `uri`: a request per 1,000 objects).
        StorageNotFoundError if `uri` is absent.
        """
        ...

    def list_files(self, uri: str, *, within: Collection[str] | None = None) -> list[Entry]:
        """Every file below a directory (recursive), names relative to `uri` with `/`,
        sorted; with `within`, only the files below those direct children of `uri`.

        A walk never descends into a symbolic link: it lists the link itself (`is_link`), so
        a link loop can neither hang nor fail a listing. StorageNotFoundError if `uri` is
        absent.
        """
        ...

    def glob(self, pattern: str) -> list[str]:
        """URIs of files matching a glob pattern (`*` within one path segment), sorted."""
        ...

    def glob_info(self, pattern: str) -> list[FileInfo]:
        """`glob` with each file's size and modification time, from the same listing (GCS:
        one request per 1,000 objects, whatever the number of files)."""
        ...

    def exists(self, uri: str) -> bool:
        """Whether a file or a non-empty directory exists at `uri`."""
        ...

    def size(self, uri: str) -> int:
        """Size in bytes of a file; StorageNotFoundError if it is absent."""
        ...

    def read_bytes(self, uri: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `[start, end)` of a file (a ranged read on GCS); `end=None` reads to the end."""
        ...

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write a whole small file atomically (readers see the old or the new content)."""
        ...

    def read_versioned(self, uri: str) -> VersionedBytes:
        """A whole small file and its generation; StorageNotFoundError if it is absent."""
        ...

    def replace_if_unchanged(self, uri: str, data: bytes, generation: str) -> bool:
        """Replace a file atomically if it is still at `generation` (from `read_versioned`);
        False, writing nothing, when another writer changed or removed it since.

        Readers, and the file after a crash, see the old or the new content, never a mix.
        GCS: one upload with an `ifGenerationMatch` precondition (GCS enforces it). Local
        disk: a fsynced temporary sibling renamed over the file after comparing the
        generation; POSIX has no conditional rename, so a writer that replaces the file in
        the instant between the comparison and the rename is overwritten.
        """
        ...

    def download_dir(self, uri: str, local_dir: Path, names: Iterable[str] | None = None) -> None:
        """Copy files below `uri` (or only `names`, relative) into a local directory. Copying a
        whole tree refuses a symbolic link in it (SymbolicLinkError); a file named in `names`
        is read as any file is (a link to a file is read through)."""
        ...

    def local_files(self, uri: str, names: Sequence[str]) -> AbstractContextManager[Path]:
        """A local directory holding the files `names` (relative) of the directory `uri`, to
        read them with a library that needs local paths (TensorFlow restoring a checkpoint).

        Local disk: `uri` itself, nothing copied (a large checkpoint costs no copy; it is
        read where it is, as TensorFlow reads it); StorageNotFoundError names a file that is
        absent. GCS: a temporary directory the files are downloaded to, removed on exit. A
        name that is a link to a file is read through, as `download_dir` reads it.
        """
        ...

    def upload_dir(self, local_dir: Path, uri: str) -> None:
        """Copy a local directory tree below `uri` (not a publish: no ordering guarantees);
        SymbolicLinkError, nothing copied, when the tree holds a symbolic link."""
        ...

    def delete_trees(self, uris: Sequence[str]) -> None:
        """Delete files and directory trees; absent ones are ignored. Local disk renames a
        directory to a staging name of ours first; GCS deletes a tree's records (and their
        checksums) first, then `saved_model.pb(txt)`, then the rest, and delete markers last.
        Versions are deleted with `delete_versions`."""
        ...

    def delete_versions(self, exporter_uri: str, versions: Sequence[int]) -> None:
        """Delete committed versions so that no reader ever sees one with missing files and
        TF Serving never finds a `saved_model.pb` whose variables are gone, and a delete cut
        short leaves only what retention proves is ours (`core.ownership`).

        Local disk: each version dir is renamed to a staging name of ours (one atomic step:
        the version is gone for every reader), then that is removed. GCS: our delete marker
        `<version>/.airflow-tf-export-deleting` is written first (a server-side copy of the
        record), then `export_metadata.json` and its checksum are deleted (the version is
        uncommitted but still a complete SavedModel), then `saved_model.pb(txt)` (TF Serving
        no longer finds a model), then every other file, and the marker last. Run it under
        `exporter_lock`.
        """
        ...

    def staging_in_use(self, uri: str) -> bool:
        """Whether a running writer holds the staging dir at `uri` (one `staging_dir` gave).

        Local disk: the writer holds an fcntl lock on the directory from its creation (made
        under the exporter lock) until it is removed or published; the lock dies with the
        process, so a crashed writer's dir is no longer in use. GCS: always False (staging
        dirs are local; publishes run under the exporter lock that retention takes too).
        """
        ...

    def staging_dir(self, exporter_uri: str) -> AbstractContextManager[Path]:
        """A fresh, empty local directory for a writer to fill before `publish_version`.

        Local disk: `<exporter>/temp-airflow-tf-export-<32 hex>/`, so publishing is a rename
        with no copy; it is created under the exporter lock (so never enter this while
        holding `exporter_lock`) and held for `staging_in_use` until exit. GCS: a local
        temporary directory. Whatever is left of it is removed on exit.
        """
        ...

    def exporter_lock(self, exporter_uri: str) -> AbstractContextManager[None]:
        """Serialise decide-and-publish between processes sharing the exporter directory.

        Local disk: an fcntl lock on `<exporter>/.airflow-tf-export.lock`. GCS: a renewed
        lease on the create-only object of that name (an expired lease left by a dead
        writer is taken over); StorageError if it cannot be acquired in time (30 minutes by
        default; local disk waits as long as the holder runs). The lock's name is neither a
        version nor a staging entry, so scans and retention ignore it. Exports decide,
        publish and apply their retention under it, and so does the RetentionOperator.
        """
        ...

    def publish_version(
        self,
        source_dir: Path,
        exporter_uri: str,
        metadata: ExportMetadata,
        *,
        now_seconds: int | None = None,
    ) -> ExportMetadata:
        """Publish `source_dir` (a SavedModel) as the next version; return its metadata.

        The version is `next_version(existing versions, now)` (VersionRangeError, nothing
        written, when it would be above MAX_VERSION); SymbolicLinkError, nothing written, when
        `source_dir` holds a symbolic link (a version never does); the metadata written is
        `metadata.with_publication(version, manifest of source_dir)`, with its checksum
        sibling `export_metadata.json.sha256-<hex>` written before it (the record stays the
        commit point). Readers never see a version with `export_metadata.json` whose files
        are incomplete, nor a `saved_model.pb` whose variables are missing. Concurrent
        publishers get distinct versions. Call it under `exporter_lock`, so that retention
        (which takes the same lock) never meets a publish in flight.
        """
        ...
