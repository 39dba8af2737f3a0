"""Confinement's pure part: the roots of a setting and whether a path lies under a root."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.confinement import is_under, split_roots

segment = st.text(alphabet="abcz09-_.", min_size=1, max_size=6).filter(
    lambda s: s not in (".", "..")
)
segments = st.lists(segment, min_size=1, max_size=4)


@given(segments, st.lists(segment, max_size=4))
def test_a_path_below_a_root_is_under_it(root: list[str], below: list[str]) -> None:
    base = "/" + "/".join(root)
    assert is_under(posixpath.join(base, *below), base)
    assert is_under(f"gs://bucket/{'/'.join([*root, *below])}", f"gs://bucket/{'/'.join(root)}")


@given(segments, segment)
def test_a_sibling_sharing_the_root_s_name_as_a_prefix_is_not_under_it(
    root: list[str], suffix: str
) -> None:
    base = "/" + "/".join(root)
    assert not is_under(base + suffix, base)
    assert not is_under(f"gs://bucket/{'/'.join(root)}{suffix}/x", f"gs://bucket/{'/'.join(root)}")


@given(segments, segments)
def test_a_root_is_not_under_a_path_below_it(root: list[str], below: list[str]) -> None:
    base = "/" + "/".join(root)
    assert not is_under(base, posixpath.join(base, *below))


@given(segments)
def test_the_local_root_and_a_bucket_hold_everything_of_their_kind(path: list[str]) -> None:
    assert is_under("/" + "/".join(path), "/")
    assert is_under("gs://b-1/" + "/".join(path), "gs://b-1")
    assert not is_under("gs://b-10/" + "/".join(path), "gs://b-1")
    assert not is_under("/" + "/".join(path), "gs://b-1")


@pytest.mark.parametrize(
    ("value", "roots"),
    [
        ("", ()),
        (" , \n ", ()),
        ("/data/models", ("/data/models",)),
        ("/data/models, gs://bucket/models", ("/data/models", "gs://bucket/models")),
        ("/a\n/b,\n\n/c ", ("/a", "/b", "/c")),
    ],
)
def test_roots_are_separated_by_commas_or_newlines(value: str, roots: tuple[str, ...]) -> None:
    assert split_roots(value) == roots
