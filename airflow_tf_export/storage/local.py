"""The local POSIX backend: plain files, fsync, and one atomic rename per published version."""

from __future__ import annotations

import errno
import fcntl
import glob
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from stat import S_ISDIR, S_ISREG

from airflow_tf_export.core.metadata import (
    METADATA_FILENAME,
    ExportMetadata,
    ManifestEntry,
    is_metadata_checksum_name,
    metadata_checksum_name,
)
from airflow_tf_export.core.ownership import is_our_staging_name, staging_name
from airflow_tf_export.core.versions import VersionRangeError, next_version, parse_version
from airflow_tf_export.storage.base import (
    EXPORTER_LOCK_NAME,
    Entry,
    FileInfo,
    StampedListing,
    StorageError,
    StorageNotFoundError,
    VersionedBytes,
)
from airflow_tf_export.storage.local_tree import regular_files, walk_tree
from airflow_tf_export.storage.manifest import build_manifest, check_publishable
from airflow_tf_export.storage.uris import StorageUri, parse_pattern, parse_uri

_RENAME_CONFLICTS = (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR)
_MAX_PUBLISH_ATTEMPTS = 1000


@contextmanager
def _os_errors(uri: object) -> Iterator[None]:
    """Turn OSError into StorageError subclasses whose message names `uri`."""
    try:
        yield
    except FileNotFoundError:
        raise StorageNotFoundError(f"{uri} does not exist") from None
    except NotADirectoryError:
        raise StorageError(f"{uri}: a file is where a directory is expected") from None
    except IsADirectoryError:
        raise StorageError(f"{uri} is a directory, expected a file") from None
    except PermissionError:
        raise StorageError(f"{uri} is not accessible: permission denied") from None
    except OSError as err:
        raise StorageError(f"{uri} cannot be accessed: {err.strerror or err}") from None


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    """fsync every file and directory below `root` (children before their directory)."""
    for directory, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            _fsync_path(Path(directory, name))
        _fsync_path(Path(directory))


def _manifest_of_flushed(staging: Path) -> tuple[ManifestEntry, ...]:
    """The manifest of `staging`, built while every file and directory in it is fsynced: the
    files reach the disk while they are read back for their checksums (one thread waits on
    the device, the other on the CPU), so publishing a large model costs about the longer of
    the two, not their sum."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fsync-staging") as pool:
        flushed = pool.submit(_fsync_tree, staging)
        manifest = build_manifest(staging)
        flushed.result()
    return manifest


def _child_entry(child: os.DirEntry[str]) -> Entry | None:
    """The Entry of one child of a listed directory, or None when it vanished meanwhile."""
    is_link = child.is_symlink()
    try:
        stat = child.stat()
    except OSError as err:
        if not is_link:
            if isinstance(err, FileNotFoundError):
                return None
            raise
        try:
            own = child.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None
        return Entry(name=child.name, is_dir=False, mtime=own.st_mtime, is_link=True)
    is_dir = S_ISDIR(stat.st_mode)
    return Entry(
        name=child.name,
        is_dir=is_dir,
        size=0 if is_dir else stat.st_size,
        mtime=stat.st_mtime,
        is_link=is_link,
    )


def _file_stamp(directory_fd: int, child: os.DirEntry[str], file_name: str) -> str | None:
    """The stamp of the regular file `file_name` in the child directory `child` (its inode,
    the file's inode, size and modification time in ns), or None when there is none. The
    file is stat'ed without following a link; the child is one `scandir` found a directory,
    not a link."""
    try:
        stat = os.stat(f"{child.name}/{file_name}", dir_fd=directory_fd, follow_symlinks=False)
    except OSError:
        return None
    if not S_ISREG(stat.st_mode):
        return None
    return f"{child.inode()}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


class LocalStorage:
    """Storage on a POSIX file system; URIs are absolute paths or `file://` URIs."""

    @property
    def read_parallelism(self) -> int:
        """1: reading small files one after another beats a thread pool on local disk."""
        return 1

    def join(self, base: str, *parts: str) -> str:
        """`base/part/...` as a local path."""
        return os.path.join(self._path(base), *parts)

    def list_dir(self, uri: str) -> list[Entry]:
        """Direct children, sorted by name. A symbolic link is listed as a link with the kind,
        size and time of its target, or as a file of size 0 when it does not resolve (a
        loop, a dangling link): one stray link never fails the listing. Children that vanish
        while the directory is listed (e.g. a staging dir renamed by a publish) are left out."""
        path = self._require_dir(uri)
        entries = []
        with _os_errors(uri), os.scandir(path) as children:
            for child in children:
                with _os_errors(child.path):
                    entry = _child_entry(child)
                if entry is not None:
                    entries.append(entry)
        return sorted(entries, key=lambda e: e.name)

    def list_dir_stamped(self, uri: str, file_name: str) -> StampedListing:
        """One `scandir`, and one `stat` of `file_name` in each child directory (its kind
        comes from the listing itself): no child with a stamp is stat'ed, links are never
        followed into, other children are listed as `list_dir` lists them."""
        path = self._require_dir(uri)
        stamps: dict[str, str] = {}
        others = []
        with _os_errors(uri), os.scandir(path) as children:
            directory_fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                for child in children:
                    if child.is_dir(follow_symlinks=False):
                        stamp = _file_stamp(directory_fd, child, file_name)
                        if stamp is not None:
                            stamps[child.name] = stamp
                            continue
                    with _os_errors(child.path):
                        entry = _child_entry(child)
                    if entry is not None:
                        others.append(entry)
            finally:
                os.close(directory_fd)
        return StampedListing(stamps, sorted(others, key=lambda e: e.name))

    def list_files(self, uri: str, *, within: Collection[str] | None = None) -> list[Entry]:
        """Every file below `uri` (or below its children `within`), names relative with `/`,
        sorted; symbolic links are listed as links and never followed, directories that
        cannot be read are skipped, vanishing entries left out."""
        root = self._require_dir(uri)
        return [
            Entry(name=e.name, is_dir=False, size=e.size, mtime=e.mtime, is_link=e.is_link)
            for e in walk_tree(root, within=within)
        ]

    def glob(self, pattern: str) -> list[str]:
        """Files matching `pattern` (`*` stays within one path segment), sorted."""
        return [info.uri for info in self.glob_info(pattern)]

    def glob_info(self, pattern: str) -> list[FileInfo]:
        """`glob` with each file's size and modification time (one stat per file). A match
        that is a symbolic link to a regular file counts as that file; one that does not
        resolve (a loop, a dangling link) is left out. `*` never spans a `/`, so links to
        directories are entered only as deep as the pattern has segments."""
        found = []
        matches = glob.glob(str(self._path(pattern, parse=parse_pattern)), include_hidden=True)
        for path in sorted(matches):
            try:
                stat = os.stat(path)
            except OSError:
                continue  # deleted since the listing, or a link that does not resolve
            if S_ISREG(stat.st_mode):
                found.append(FileInfo(path, stat.st_size, stat.st_mtime))
        return found

    def exists(self, uri: str) -> bool:
        """Whether a file or a non-empty directory exists."""
        path = self._path(uri)
        if path.is_file():
            return True
        with _os_errors(uri):
            return path.is_dir() and any(path.iterdir())

    def size(self, uri: str) -> int:
        """Size of a file in bytes."""
        path = self._path(uri)
        with _os_errors(uri):
            if path.is_dir():
                raise IsADirectoryError(uri)
            return path.stat().st_size

    def read_bytes(self, uri: str, start: int = 0, end: int | None = None) -> bytes:
        """Bytes `[start, end)` of a file."""
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"invalid byte range [{start}, {end}) for {uri}")
        with _os_errors(uri), self._path(uri).open("rb") as handle:
            handle.seek(start)
            return handle.read() if end is None else handle.read(end - start)

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write via a temporary sibling, fsync, rename over the target, fsync the parent."""
        path = self._path(uri)
        with _os_errors(uri):
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._temporary_sibling(path, data) as temporary:
                os.replace(temporary, path)
            _fsync_path(path.parent)

    def read_versioned(self, uri: str) -> VersionedBytes:
        """The whole file and its generation: inode, modification time and SHA-256 of the
        content read (TensorFlow replaces files by renaming, which changes the inode; an
        in-place write within the clock's granularity still changes the digest)."""
        with _os_errors(uri):
            return self._read_versioned(self._path(uri))

    def replace_if_unchanged(self, uri: str, data: bytes, generation: str) -> bool:
        """Write a fsynced temporary sibling, compare the file's generation, rename the
        temporary over it and fsync the parent; False (nothing written) when the file
        changed or vanished since `generation` was read."""
        path = self._path(uri)
        with _os_errors(uri), self._temporary_sibling(path, data) as temporary:
            try:
                current = self._read_versioned(path).generation
            except FileNotFoundError:
                return False
            if current != generation:
                return False
            os.replace(temporary, path)
            _fsync_path(path.parent)
        return True

    @staticmethod
    @contextmanager
    def _temporary_sibling(path: Path, data: bytes) -> Iterator[Path]:
        """`data` in a fsynced hidden file next to `path`, removed on exit unless renamed."""
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            yield temporary
        finally:
            temporary.unlink(missing_ok=True)

    @staticmethod
    def _read_versioned(path: Path) -> VersionedBytes:
        with path.open("rb") as handle:
            stat = os.fstat(handle.fileno())
            data = handle.read()
        digest = hashlib.sha256(data).hexdigest()
        return VersionedBytes(data, f"{stat.st_ino}:{stat.st_mtime_ns}:{digest}")

    def download_dir(self, uri: str, local_dir: Path, names: Iterable[str] | None = None) -> None:
        """Copy files below `uri` (all, refusing a symbolic link among them, or only the
        relative `names`) into `local_dir`."""
        root = self._path(uri)
        if names is None:
            self._require_dir(uri)
            wanted = [path.relative_to(root).as_posix() for path in regular_files(root)]
        else:
            wanted = list(names)
        for name in wanted:
            target = local_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with _os_errors(root / name):
                shutil.copyfile(root / name, target)

    @contextmanager
    def local_files(self, uri: str, names: Sequence[str]) -> Iterator[Path]:
        """The directory itself, once every named file is found there."""
        root = self._path(uri)
        for name in names:
            with _os_errors(root / name):
                mode = os.stat(root / name).st_mode
            if not S_ISREG(mode):
                raise StorageError(f"{root / name} is not a regular file")
        yield root

    def upload_dir(self, local_dir: Path, uri: str) -> None:
        """Copy a local tree below `uri` (files are overwritten; no ordering guarantees);
        SymbolicLinkError, nothing copied, when the tree holds a symbolic link."""
        with _os_errors(local_dir):
            regular_files(local_dir)
            shutil.copytree(local_dir, self._path(uri), dirs_exist_ok=True)

    def delete_trees(self, uris: Sequence[str]) -> None:
        """Delete files and trees; a directory is first renamed to a staging name of ours in
        its parent, so it disappears at once for readers (TF Serving) and a crash part-way
        leaves only a staging directory that retention removes later."""
        for uri in uris:
            path = self._path(uri)
            with _os_errors(uri):
                if path.is_symlink() or path.is_file():
                    path.unlink()
                elif path.is_dir():
                    self._rename_and_remove(path)

    def delete_versions(self, exporter_uri: str, versions: Sequence[int]) -> None:
        """Rename each version dir to a staging name of ours (the version is gone for every
        reader in that one step), fsync the exporter dir, then remove it."""
        exporter = self._path(exporter_uri)
        for version in versions:
            path = exporter / str(version)
            with _os_errors(path):
                if path.is_dir():
                    self._rename_and_remove(path)

    @staticmethod
    def _rename_and_remove(path: Path) -> None:
        doomed = path.with_name(staging_name(uuid.uuid4().hex))
        os.rename(path, doomed)
        _fsync_path(path.parent)
        shutil.rmtree(doomed)

    def staging_in_use(self, uri: str) -> bool:
        """Whether another open file description holds the directory's fcntl lock (the one
        `staging_dir` takes for its writer); False for a path that does not exist."""
        try:
            with _os_errors(uri):
                fd = os.open(self._path(uri), os.O_RDONLY | os.O_DIRECTORY)
        except StorageNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    @contextmanager
    def staging_dir(self, exporter_uri: str) -> Iterator[Path]:
        """`<exporter>/temp-airflow-tf-export-<32 hex>/`, created empty under the exporter
        lock and held (an fcntl lock on the directory) until exit, so retention, which scans
        under the exporter lock, sees it only as in use; removed on exit unless published."""
        exporter = self._ensure_dir(exporter_uri)
        staging = exporter / staging_name(uuid.uuid4().hex)
        with self.exporter_lock(exporter_uri), _os_errors(staging):
            staging.mkdir()
            fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            os.close(fd)

    @contextmanager
    def exporter_lock(self, exporter_uri: str) -> Iterator[None]:
        """An exclusive fcntl lock on `<exporter>/.airflow-tf-export.lock` (blocks)."""
        lock_path = self._ensure_dir(exporter_uri) / EXPORTER_LOCK_NAME
        with _os_errors(lock_path):
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def publish_version(
        self,
        source_dir: Path,
        exporter_uri: str,
        metadata: ExportMetadata,
        *,
        now_seconds: int | None = None,
    ) -> ExportMetadata:
        """Stage in `<exporter>/temp-airflow-tf-export-*` (no copy when `source_dir` is
        already one, as given by `staging_dir`), write the metadata's checksum sibling and
        the metadata, fsync everything, rename to the version (the commit point)."""
        check_publishable(source_dir)
        exporter = self._ensure_dir(exporter_uri)
        in_place = is_our_staging_name(source_dir.name) and source_dir.parent.resolve() == (
            exporter.resolve()
        )
        staging = source_dir if in_place else exporter / staging_name(uuid.uuid4().hex)
        try:
            if not in_place:
                with _os_errors(source_dir):
                    shutil.copytree(source_dir, staging)
            with _os_errors(staging):
                manifest = _manifest_of_flushed(staging)
                return self._rename_to_next_version(
                    staging, exporter, metadata, manifest, now_seconds
                )
        finally:
            if not in_place:
                shutil.rmtree(staging, ignore_errors=True)

    def _rename_to_next_version(
        self,
        staging: Path,
        exporter: Path,
        metadata: ExportMetadata,
        manifest: tuple[ManifestEntry, ...],
        now_seconds: int | None,
    ) -> ExportMetadata:
        for _attempt in range(_MAX_PUBLISH_ATTEMPTS):
            existing = [v for name in os.listdir(exporter) if (v := parse_version(name))]
            now = int(time.time()) if now_seconds is None else now_seconds
            try:
                version = next_version(existing, now)
            except VersionRangeError as err:
                raise VersionRangeError(f"cannot publish into {exporter}: {err}") from None
            published = metadata.with_publication(version, manifest)
            record = published.to_json().encode()
            for stale in staging.iterdir():
                if is_metadata_checksum_name(stale.name):
                    stale.unlink()
            for name, data in ((metadata_checksum_name(record), b""), (METADATA_FILENAME, record)):
                with (staging / name).open("wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
            _fsync_path(staging)
            try:
                os.rename(staging, exporter / str(published.version))
            except OSError as err:
                if err.errno in _RENAME_CONFLICTS:
                    continue
                raise
            _fsync_path(exporter)
            return published
        raise StorageError(
            f"could not publish into {exporter}: every version tried was taken by another "
            f"writer ({_MAX_PUBLISH_ATTEMPTS} attempts)"
        )

    def _require_dir(self, uri: str) -> Path:
        path = self._path(uri)
        with _os_errors(uri):
            if not path.is_dir():
                path.stat()
                raise NotADirectoryError(uri)
        return path

    def _ensure_dir(self, uri: str) -> Path:
        path = self._path(uri)
        if path.exists() and not path.is_dir():
            raise StorageError(f"{uri} is a file, expected a directory")
        with _os_errors(uri):
            path.mkdir(parents=True, exist_ok=True)
        return path

    @staticmethod
    def _path(uri: str, parse: Callable[[str], StorageUri] = parse_uri) -> Path:
        parsed = parse(uri)
        if parsed.is_gcs:
            raise ValueError(f"local storage cannot handle the GCS URI {uri!r}")
        return Path(parsed.path)
