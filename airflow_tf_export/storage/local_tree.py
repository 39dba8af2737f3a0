"""Walking a local directory tree without ever following a symbolic link.

A walk that followed links would hang on two links to `.` (each level doubles the paths) and
fail on one ("too many levels of symbolic links"), so one stray entry would block every
listing of its directory. Here a link is reported as a link and never entered; special files
(FIFOs, sockets, devices) are left out, since reading one can block.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from airflow_tf_export.storage.base import StorageError, SymbolicLinkError


@dataclass(frozen=True)
class TreeEntry:
    """A regular file or a symbolic link found by `walk_tree`; `name` is relative to the root
    with `/`; size and time are the link's own for a link."""

    name: str
    path: Path
    is_link: bool
    size: int
    mtime: float


def walk_tree(
    root: Path, *, within: Collection[str] | None = None, strict: bool = False
) -> list[TreeEntry]:
    """Every regular file and symbolic link below `root`, sorted by name; with `within`, only
    below those direct children of `root` (a child that is a link is not entered).

    Entries that vanish while the tree is walked are left out. A directory that cannot be
    read is skipped unless `strict`, when StorageError names it (a publish must not miss a
    file; a scan must not fail on a foreign entry).
    """
    found: list[TreeEntry] = []
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as children:
                listed = list(children)
        except FileNotFoundError:
            continue
        except OSError as err:
            if strict:
                raise StorageError(f"{directory} cannot be listed: {err.strerror or err}") from None
            continue
        for child in listed:
            if prefix == "" and within is not None and child.name not in within:
                continue
            name = f"{prefix}{child.name}"
            try:
                is_link = child.is_symlink()
                if not is_link and child.is_dir(follow_symlinks=False):
                    pending.append((Path(child.path), f"{name}/"))
                    continue
                if not is_link and not child.is_file(follow_symlinks=False):
                    continue  # a FIFO, socket or device
                stat = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            found.append(TreeEntry(name, Path(child.path), is_link, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda entry: entry.name)


def regular_files(root: Path) -> list[Path]:
    """Every regular file below `root`, sorted by relative path; SymbolicLinkError names the
    first symbolic link (a tree that is published or copied holds none: a link cannot be
    stored on GCS, and following it could copy what lies outside the tree)."""
    entries = walk_tree(root, strict=True)
    links = [entry for entry in entries if entry.is_link]
    if links:
        link = links[0].path
        raise SymbolicLinkError(
            f"{link} is a symbolic link{link_target(link)}; {root} is copied without following "
            f"links: replace it by the file it points to ({len(links)} links in all)"
        )
    return [entry.path for entry in entries]


def link_target(link: Path) -> str:
    """` (to '<target>')` for a message naming a symbolic link ("" once it is gone)."""
    try:
        return f" (to {os.readlink(link)!r})"
    except OSError:
        return ""
