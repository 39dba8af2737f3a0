"""Version names: positive integers that strictly increase; `temp-` names are never versions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.versions import (
    STAGING_PREFIX,
    is_staging_name,
    next_version,
    parse_version,
)


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("1795200000", 1795200000),
        ("1795200000/", 1795200000),
        ("7", 7),
        ("0007", 7),
        ("0", None),
        ("-1", None),
        ("+5", None),
        ("", None),
        ("1.5", None),
        ("temp-123", None),
        ("\u0661\u0662", None),
        ("\uff11\uff12", None),
        ("12 ", None),
        ("variables", None),
    ],
)
def test_parse_version(name: str, version: int | None) -> None:
    assert parse_version(name) == version


@given(st.lists(st.integers(-(10**10), 10**10), min_size=1, max_size=40), st.integers(0, 10**10))
def test_next_version_strictly_increases_over_any_clock(clocks: list[int], start: int) -> None:
    existing = [start] if start > 0 else []
    for now in clocks:
        version = next_version(existing, now)
        assert version > max(existing, default=0)
        assert version >= 1
        assert parse_version(str(version)) == version
        existing.append(version)


@given(st.integers(1, 10**10), st.lists(st.integers(1, 10**9), max_size=10))
def test_next_version_is_the_clock_when_it_is_ahead(now: int, existing: list[int]) -> None:
    if all(v < now for v in existing):
        assert next_version(existing, now) == now


def test_next_version_raises_to_newest_plus_one() -> None:
    assert next_version([1795200005], 1795200000) == 1795200006
    assert next_version([], 0) == 1


@given(st.text(max_size=20))
def test_staging_names_are_never_versions(token: str) -> None:
    name = STAGING_PREFIX + token
    assert is_staging_name(name)
    assert is_staging_name(name + "/")
    assert parse_version(name) is None


@pytest.mark.parametrize("name", ["1795200000", "best", "tem-1", "xtemp-1"])
def test_other_names_are_not_staging(name: str) -> None:
    assert not is_staging_name(name)
