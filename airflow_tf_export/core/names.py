"""Exporter names: each one becomes a directory `export/<name>/`, so it must be one safe segment.

The seeds joined names straight into the export path without checks; a name like `../x` or
`a/b` then wrote outside the export directory, and an all-digit name looks like a version.
"""

from __future__ import annotations

from airflow_tf_export.core.versions import STAGING_PREFIX

_VALID = (
    "a non-empty string usable as one directory name: no '/' or '\\', no '..', "
    f"not all digits, not starting with {STAGING_PREFIX!r}, no control characters, no '#' or '?'"
)


def validate_exporter_name(name: object) -> str:
    """Return `name` when it is a valid exporter name; ValueError naming it otherwise."""
    problem = _problem(name)
    if problem:
        raise ValueError(f"invalid exporter name {name!r}: {problem}; expected {_VALID}")
    assert isinstance(name, str)
    return name


def _problem(name: object) -> str:
    if not isinstance(name, str):
        return f"it is a {type(name).__name__}, not a string"
    if not name:
        return "it is empty"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        return "it contains a control character"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    if "#" in name or "?" in name:
        return "'#' and '?' end the path of a gs:// or file:// URI (a fragment or a query)"
    if ".." in name or name == ".":
        return "it refers to a parent or current directory"
    if name.isdigit():
        return "it is all digits, which is how version directories are named"
    if name.startswith(STAGING_PREFIX):
        return f"{STAGING_PREFIX!r} is the prefix of staging directories"
    return ""
