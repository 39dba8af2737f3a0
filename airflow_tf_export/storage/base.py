"""The one Storage protocol that local disk and GCS implement.

Paths are URIs: a local absolute path (or `file://` URI) or `gs://bucket/prefix`. Everything
above this package speaks only this protocol, so local/GCS differences stay here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class StorageError(Exception):
    """A storage operation failed; the message names the URI."""


class StorageNotFoundError(StorageError, FileNotFoundError):
    """The URI (file, directory, prefix or bucket) does not exist."""


@dataclass(frozen=True)
class Entry:
    """One child of a directory: a file (with size) or a sub-directory."""

    name: str
    is_dir: bool
    size: int = 0
    mtime: float | None = None


class Storage(Protocol):
    """Listing, reading, writing, publishing and deleting under one URI scheme."""

    def join(self, base: str, *parts: str) -> str:
        """`base/part/...` in this backend's URI form."""
        ...

    def list_dir(self, uri: str) -> list[Entry]:
        """Direct children of a directory, sorted by name; StorageNotFoundError if it is absent."""
        ...

    def list_files(self, uri: str) -> list[Entry]:
        """Every file below a directory (recursive), names relative to `uri` with `/`."""
        ...

    def glob(self, pattern: str) -> list[str]:
        """URIs of files matching a glob pattern (`*` within one path segment), sorted."""
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

    def download_dir(self, uri: str, local_dir: Path, names: Iterable[str] | None = None) -> None:
        """Copy files below `uri` (or only `names`, relative) into a local directory."""
        ...

    def upload_dir(self, local_dir: Path, uri: str) -> None:
        """Copy a local directory tree below `uri` (not a publish: no ordering guarantees)."""
        ...

    def delete_trees(self, uris: Sequence[str]) -> None:
        """Delete files and directory trees; absent ones are ignored."""
        ...
