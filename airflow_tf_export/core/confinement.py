"""Opt-in confinement, the pure part: the allowed roots of a setting and whether a path lies
under one of them. Paths are compared as normalised strings, segment by segment (the storage
layer normalises URIs and resolves local symbolic links first)."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[,\n]")


def split_roots(value: str) -> tuple[str, ...]:
    """The roots listed in an `allowed_roots` setting: separated by commas or newlines,
    surrounding blanks and empty items dropped, in the order given."""
    return tuple(item.strip() for item in _SEPARATORS.split(value) if item.strip())


def is_under(path: str, root: str) -> bool:
    """Whether `path` is `root` or lies below it, by whole segments: `/data/models-old` is
    not under `/data/models`. Both must be normalised in the same form (local absolute paths,
    or `gs://bucket[/prefix]`): no `.` or `..` segment, no doubled or trailing `/` (the local
    root `/` excepted)."""
    if path == root:
        return True
    return path.startswith(root if root.endswith("/") else f"{root}/")
