"""Exporter names must be one safe directory segment that is neither a version nor a staging dir."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.names import validate_exporter_name
from airflow_tf_export.core.versions import is_staging_name, parse_version


@pytest.mark.parametrize("name", ["best_exporter", "latest", "v2.serving", "a.b", "0x1", "temp"])
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert validate_exporter_name(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "it is empty"),
        (None, "NoneType, not a string"),
        (3, "int, not a string"),
        (b"best", "bytes, not a string"),
        ("a/b", "path separator"),
        ("a\\b", "path separator"),
        ("/abs", "path separator"),
        (".", "parent or current directory"),
        ("..", "parent or current directory"),
        ("x..y", "parent or current directory"),
        ("1795200000", "all digits"),
        ("007", "all digits"),
        ("temp-abc", "prefix of staging directories"),
        ("best\x00", "control character"),
        ("best\n", "control character"),
        ("tab\tname", "control character"),
        ("del\x7f", "control character"),
    ],
)
def test_bad_names_are_rejected_with_the_value_and_the_rule(name: object, problem: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_exporter_name(name)
    message = str(caught.value)
    assert repr(name) in message
    assert problem in message
    assert "expected a non-empty string usable as one directory name" in message


@given(st.text(max_size=12))
def test_every_accepted_name_is_one_segment_and_not_a_version_or_staging_dir(name: str) -> None:
    try:
        accepted = validate_exporter_name(name)
    except ValueError:
        return
    assert accepted == name
    assert posixpath.basename(name) == name
    assert name not in (".", "..")
    assert ".." not in name
    assert parse_version(name) is None
    assert not name.isdigit()
    assert not is_staging_name(name)
    assert all(ord(char) >= 0x20 and ord(char) != 0x7F for char in name)


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
def test_ordinary_identifiers_are_accepted(name: str) -> None:
    if ".." in name or name.startswith("temp-"):
        return
    assert validate_exporter_name(name) == name
