"""Version names: positive integers that strictly increase; `temp-` names are never versions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.versions import (
    MAX_VERSION,
    STAGING_PREFIX,
    VersionRangeError,
    is_beyond_versions,
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
        (str(2**63 - 1), 2**63 - 1),
        (str(2**63), None),
        ("99999999999999999999", None),
        ("100000000000000000000", None),
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


# ---- the int64 limit: TF Serving's version numbers are int64 -------------------------------

# Numbers around the limit, so every property below meets it, and ordinary ones.
_NUMBERS = st.one_of(
    st.integers(1, 10**30),
    st.integers(MAX_VERSION - 3, MAX_VERSION + 3),
    st.integers(1_700_000_000, 1_900_000_000),
)


@given(st.integers(1, MAX_VERSION))
def test_every_positive_int64_is_a_version(number: int) -> None:
    assert parse_version(str(number)) == number
    assert not is_beyond_versions(str(number))


@given(st.integers(MAX_VERSION + 1, 10**40), st.sampled_from(["", "/"]))
def test_a_number_beyond_int64_is_not_a_version(number: int, slash: str) -> None:
    assert parse_version(str(number) + slash) is None
    assert is_beyond_versions(str(number) + slash)


@given(st.text(max_size=25))
def test_a_name_is_at_most_one_of_version_beyond_and_staging(name: str) -> None:
    kinds = [parse_version(name) is not None, is_beyond_versions(name), is_staging_name(name)]
    assert sum(kinds) <= 1


@given(st.lists(_NUMBERS.map(str), max_size=8), _NUMBERS)
def test_next_version_is_servable_and_above_every_version_or_refused(
    names: list[str], now: int
) -> None:
    """Whatever the directory holds (names beyond int64 included), the next version is a
    servable one above every version, or the export is refused: never an unservable one."""
    versions = [v for name in names if (v := parse_version(name)) is not None]
    newest = max(versions, default=0)
    if max(now, newest + 1) > MAX_VERSION:
        with pytest.raises(VersionRangeError, match=r"above 9223372036854775807 \(2\*\*63-1\)"):
            next_version(versions, now)
        return
    version = next_version(versions, now)
    assert newest < version <= MAX_VERSION
    assert parse_version(str(version)) == version


def test_a_foreign_dir_beyond_int64_is_never_numbered_after() -> None:
    """The adversarial case: `99999999999999999999/` made the next version
    100000000000000000000, which TF Serving never serves, nor any version after it."""
    names = ["99999999999999999999", "1795200000"]
    versions = [v for n in names if (v := parse_version(n)) is not None]
    assert next_version(versions, 1795200100) == 1795200100


def test_no_servable_version_left_is_refused_naming_the_numbers() -> None:
    with pytest.raises(VersionRangeError) as raised:
        next_version([MAX_VERSION, 5], 1795200000)
    message = str(raised.value)
    assert "the next version would be 9223372036854775808" in message
    assert "the newest existing version is 9223372036854775807" in message
    assert "Nothing was published" in message
    assert isinstance(raised.value, ValueError)
    assert next_version([MAX_VERSION - 1], 1795200000) == MAX_VERSION
