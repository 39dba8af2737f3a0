"""Version directory names: positive integers that strictly increase in one exporter dir.

TF Serving serves the highest integer version and ignores other names, so staging names are
never all digits.
"""

from __future__ import annotations

from collections.abc import Iterable

STAGING_PREFIX = "temp-"


def parse_version(name: str) -> int | None:
    """The version number of a directory name, or None when it is not a version."""
    name = name.rstrip("/")
    if not name.isascii() or not name.isdigit():
        return None
    value = int(name)
    return value if value > 0 else None


def next_version(existing: Iterable[int], now_seconds: int) -> int:
    """The epoch second at export time, raised to newest existing + 1 when needed."""
    newest = max(existing, default=0)
    return max(int(now_seconds), newest + 1, 1)


def is_staging_name(name: str) -> bool:
    """Whether a name has the prefix reserved for staging entries (`temp-`): never a version
    nor an exporter name. Which of them this package created is `core.ownership`'s call."""
    return name.rstrip("/").startswith(STAGING_PREFIX)
