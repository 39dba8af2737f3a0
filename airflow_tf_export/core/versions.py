"""Version directory names: positive integers that strictly increase in one exporter dir.

TF Serving serves the highest integer version and ignores other names, so staging names are
never all digits.
"""

from __future__ import annotations

from collections.abc import Iterable

STAGING_PREFIX = "temp-"

MAX_VERSION = 2**63 - 1
"""The highest version TF Serving can serve: its version numbers are int64, and a directory
name beyond that does not parse as one (it is ignored, like any other non-version name)."""


class VersionRangeError(ValueError):
    """No servable version number is left above the existing versions."""


def parse_version(name: str) -> int | None:
    """The version number of a directory name, or None when it is not a version: not all
    ASCII digits, zero, or above MAX_VERSION (TF Serving would never serve it)."""
    name = name.rstrip("/")
    if not name.isascii() or not name.isdigit():
        return None
    value = int(name)
    return value if 0 < value <= MAX_VERSION else None


def is_integer_name(name: str) -> bool:
    """A version's name, or an all-digit name beyond MAX_VERSION: the names that, without our
    metadata, claim or delete marker, make an entry foreign."""
    return parse_version(name) is not None or is_beyond_versions(name)


def is_beyond_versions(name: str) -> bool:
    """Whether a directory name is all digits but above MAX_VERSION: not a version, and
    nothing this product would ever write or delete (it is reported as foreign)."""
    name = name.rstrip("/")
    return name.isascii() and name.isdigit() and int(name) > MAX_VERSION


def next_version(existing: Iterable[int], now_seconds: int) -> int:
    """The epoch second at export time, raised to newest existing + 1 when needed.

    VersionRangeError when that is above MAX_VERSION: a version TF Serving cannot serve is
    never published (names beyond MAX_VERSION are not versions, so they never count here).
    """
    newest = max(existing, default=0)
    version = max(int(now_seconds), newest + 1, 1)
    if version > MAX_VERSION:
        raise VersionRangeError(
            f"the next version would be {version}, above {MAX_VERSION} (2**63-1), the highest "
            f"version TF Serving can serve (its versions are int64); the newest existing "
            f"version is {newest}. Nothing was published: move the versions near that limit "
            "out of the exporter directory, or export into a new one"
        )
    return version


def is_staging_name(name: str) -> bool:
    """Whether a name has the prefix reserved for staging entries (`temp-`): never a version
    nor an exporter name. Which of them this package created is `core.ownership`'s call."""
    return name.rstrip("/").startswith(STAGING_PREFIX)
