"""Opt-in confinement: every URI a task reads or writes must lie under an allowed root.

Unset, nothing is checked. Set (the Airflow option `[tf_export] allowed_roots`, read by the
StorageHook, or the CLI's environment variable), a URI outside every root is refused before
anything is read or written there. Local paths are compared after resolving symbolic links
(`os.path.realpath`, roots too), so neither `..` nor a link leads out; GCS URIs after
normalisation (`parse_uri` refuses `.` and `..` segments). `ConfinedStorage` applies the
check to every call of a Storage; the `assets_extra` planner to its local source files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from airflow_tf_export.core.confinement import is_under, split_roots
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.storage.base import (
    Entry,
    FileInfo,
    StampedListing,
    Storage,
    VersionedBytes,
)
from airflow_tf_export.storage.uris import StorageUri, parse_pattern, parse_uri

ALLOWED_ROOTS_SECTION = "tf_export"
ALLOWED_ROOTS_KEY = "allowed_roots"
ALLOWED_ROOTS_OPTION = f"[{ALLOWED_ROOTS_SECTION}] {ALLOWED_ROOTS_KEY}"
ALLOWED_ROOTS_ENV = f"AIRFLOW__{ALLOWED_ROOTS_SECTION.upper()}__{ALLOWED_ROOTS_KEY.upper()}"
_GLOB_CHARS = frozenset("*?[")


class ConfinementError(Exception):
    """A path outside the allowed roots, or a bad `allowed_roots` setting: bad input, never
    worth a retry. Neither a StorageError nor a ValueError, so that no handler of those takes
    it for a missing file or a bad record and carries on."""


@dataclass(frozen=True)
class AllowedRoots:
    """The roots every URI must lie under. `setting` names where they were configured and
    `value` is what it says (both go into every refusal); `error` builds the exception
    raised (AirflowFailException under Airflow)."""

    roots: tuple[StorageUri, ...]
    setting: str
    value: str
    error: Callable[[str], Exception] = ConfinementError

    @classmethod
    def parse(
        cls,
        value: str | None,
        setting: str,
        *,
        error: Callable[[str], Exception] = ConfinementError,
    ) -> AllowedRoots | None:
        """The roots of a setting's value (comma- or newline-separated absolute paths,
        `file://` or `gs://` URIs), or None when it is unset or blank (no confinement);
        `error` names a root that is not one."""
        if value is None or not split_roots(value):
            return None
        roots = []
        for root in split_roots(value):
            try:
                roots.append(parse_uri(root))
            except ValueError as err:
                message = f"{setting} = {value!r} lists {root!r}, which is not a root: {err}"
                raise error(message) from None
        return cls(tuple(roots), setting, value, error)

    def check(self, uri: str, action: str) -> None:
        """Refuse to `action` (e.g. "read") `uri` unless it lies under a root."""
        parsed = parse_uri(uri)
        self._check(str(parsed), _resolved(parsed), action)

    def check_pattern(self, pattern: str, action: str) -> None:
        """Refuse a glob unless its literal directory (before the first segment with a
        wildcard) lies under a root; each match is checked on its own when it is read."""
        parsed = parse_pattern(pattern)
        segments = parsed.path.split("/")
        literal = next((i for i, s in enumerate(segments) if _GLOB_CHARS & set(s)), None)
        if literal is not None:
            directory = "/".join(segments[:literal]) or ("" if parsed.is_gcs else "/")
            parsed = StorageUri(parsed.scheme, parsed.bucket, directory)
        self._check(str(parsed), _resolved(parsed), action)

    def check_local_file(self, path: Path, action: str) -> Path:
        """The file `path` resolves to (symbolic links followed), refused unless it lies
        under a root."""
        resolved = Path(os.path.realpath(path))
        self._check(str(path), str(resolved), action)
        return resolved

    def _check(self, uri: str, resolved: str, action: str) -> None:
        if any(is_under(resolved, _resolved(root)) for root in self.roots):
            return
        through = "" if resolved == uri else f" (it resolves to {resolved})"
        raise self.error(
            f"refusing to {action} {uri}{through}: it lies outside the allowed roots "
            f"{self.setting} = {self.value!r}; use a path under one of them, or add a root "
            "to that option"
        )


def confined_storage(
    uri: str, roots: AllowedRoots | None, make: Callable[[str], Storage]
) -> Storage:
    """The Storage `make(uri)` gives, confined to `roots` (None: as it is); `uri` itself is
    checked first, before any backend is built."""
    if roots is None:
        return make(uri)
    roots.check(uri, "use")
    return ConfinedStorage(make(uri), roots)


def _resolved(parsed: StorageUri) -> str:
    """A URI as compared: GCS as normalised, a local path with symbolic links resolved."""
    return str(parsed) if parsed.is_gcs else os.path.realpath(parsed.path)


class ConfinedStorage:
    """A Storage whose every call first checks its URIs against the allowed roots (a glob's
    matches too: a link among them may lead outside), then passes on to `inner`."""

    def __init__(self, inner: Storage, roots: AllowedRoots) -> None:
        self.inner = inner
        self.roots = roots

    @property
    def read_parallelism(self) -> int:
        """The inner storage's (no I/O, nothing to check)."""
        return self.inner.read_parallelism

    def join(self, base: str, *parts: str) -> str:
        """As the inner storage joins (no I/O, nothing to check)."""
        return self.inner.join(base, *parts)

    def list_dir(self, uri: str) -> list[Entry]:
        """Checked, then listed."""
        self.roots.check(uri, "list")
        return self.inner.list_dir(uri)

    def list_dir_stamped(self, uri: str, file_name: str) -> StampedListing:
        """Checked, then listed (a stamp is taken without following a link)."""
        self.roots.check(uri, "list")
        return self.inner.list_dir_stamped(uri, file_name)

    def list_files(self, uri: str, *, within: Collection[str] | None = None) -> list[Entry]:
        """Checked, then listed (a walk never follows a link, so it cannot lead outside)."""
        self.roots.check(uri, "list")
        return self.inner.list_files(uri, within=within)

    def glob(self, pattern: str) -> list[str]:
        """The matches of `glob_info`."""
        return [info.uri for info in self.glob_info(pattern)]

    def glob_info(self, pattern: str) -> list[FileInfo]:
        """The pattern's literal directory checked, then every match."""
        self.roots.check_pattern(pattern, "search")
        found = self.inner.glob_info(pattern)
        for info in found:
            self.roots.check(info.uri, "read")
        return found

    def exists(self, uri: str) -> bool:
        """Checked, then looked up."""
        self.roots.check(uri, "read")
        return self.inner.exists(uri)

    def size(self, uri: str) -> int:
        """Checked, then looked up."""
        self.roots.check(uri, "read")
        return self.inner.size(uri)

    def read_bytes(self, uri: str, start: int = 0, end: int | None = None) -> bytes:
        """Checked, then read."""
        self.roots.check(uri, "read")
        return self.inner.read_bytes(uri, start, end)

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Checked, then written."""
        self.roots.check(uri, "write")
        self.inner.write_bytes(uri, data)

    def read_versioned(self, uri: str) -> VersionedBytes:
        """Checked, then read."""
        self.roots.check(uri, "read")
        return self.inner.read_versioned(uri)

    def replace_if_unchanged(self, uri: str, data: bytes, generation: str) -> bool:
        """Checked, then replaced."""
        self.roots.check(uri, "write")
        return self.inner.replace_if_unchanged(uri, data, generation)

    def download_dir(self, uri: str, local_dir: Path, names: Iterable[str] | None = None) -> None:
        """`uri` and every named file checked (a name may be a link), then copied."""
        self.roots.check(uri, "read")
        wanted = None if names is None else list(names)
        for name in wanted or ():
            self.roots.check(self.inner.join(uri, name), "read")
        self.inner.download_dir(uri, local_dir, wanted)

    def local_files(self, uri: str, names: Sequence[str]) -> AbstractContextManager[Path]:
        """`uri` and every named file checked (a name may be a link), then made local."""
        self.roots.check(uri, "read")
        for name in names:
            self.roots.check(self.inner.join(uri, name), "read")
        return self.inner.local_files(uri, names)

    def upload_dir(self, local_dir: Path, uri: str) -> None:
        """The destination checked, then copied."""
        self.roots.check(uri, "write")
        self.inner.upload_dir(local_dir, uri)

    def delete_trees(self, uris: Sequence[str]) -> None:
        """Every URI checked before anything is deleted."""
        for uri in uris:
            self.roots.check(uri, "delete")
        self.inner.delete_trees(uris)

    def delete_versions(self, exporter_uri: str, versions: Sequence[int]) -> None:
        """Every version checked before anything is deleted."""
        for version in versions:
            self.roots.check(self.inner.join(exporter_uri, str(version)), "delete")
        self.inner.delete_versions(exporter_uri, versions)

    def staging_in_use(self, uri: str) -> bool:
        """Checked, then looked up."""
        self.roots.check(uri, "read")
        return self.inner.staging_in_use(uri)

    def staging_dir(self, exporter_uri: str) -> AbstractContextManager[Path]:
        """Checked, then created."""
        self.roots.check(exporter_uri, "write")
        return self.inner.staging_dir(exporter_uri)

    def exporter_lock(self, exporter_uri: str) -> AbstractContextManager[None]:
        """Checked, then taken."""
        self.roots.check(exporter_uri, "write")
        return self.inner.exporter_lock(exporter_uri)

    def publish_version(
        self,
        source_dir: Path,
        exporter_uri: str,
        metadata: ExportMetadata,
        *,
        now_seconds: int | None = None,
    ) -> ExportMetadata:
        """Checked, then published."""
        self.roots.check(exporter_uri, "write")
        return self.inner.publish_version(
            source_dir, exporter_uri, metadata, now_seconds=now_seconds
        )
