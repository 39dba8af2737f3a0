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


def staging_name(token: str) -> str:
    """A staging directory name that can never be mistaken for a version (`temp-<token>`)."""
    name = f"{STAGING_PREFIX}{token}"
    assert not name.isdigit()
    return name


def is_staging_name(name: str) -> bool:
    """Whether a directory name is one of our staging directories."""
    return name.rstrip("/").startswith(STAGING_PREFIX)


# A version being published (or deleted) on GCS, where a directory cannot appear atomically,
# is reserved by an object of this name prefix followed by the version number.
CLAIM_PREFIX = staging_name("claim-")


def claim_version(name: str) -> int | None:
    """The version a claim name (`temp-claim-<version>`) reserves, or None."""
    return parse_version(name[len(CLAIM_PREFIX) :]) if name.startswith(CLAIM_PREFIX) else None
