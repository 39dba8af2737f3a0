"""assets_extra: every destination and source is checked before anything is copied."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest

from airflow_tf_export.savedmodel.assets_extra import (
    ExtraAsset,
    copy_assets_extra,
    plan_assets_extra,
)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "vocab.txt"
    path.write_text("english\nfrench\n")
    return path


def test_nested_destinations_are_copied(source: Path, tmp_path: Path) -> None:
    plan = plan_assets_extra({"some/sub/dir/my_extra_file": str(source), "top.txt": str(source)})
    assert plan == (
        ExtraAsset(PurePosixPath("some/sub/dir/my_extra_file"), source),
        ExtraAsset(PurePosixPath("top.txt"), source),
    )
    export_dir = tmp_path / "export"
    copy_assets_extra(plan, export_dir)
    copied = export_dir / "assets.extra" / "some" / "sub" / "dir" / "my_extra_file"
    assert copied.read_text() == source.read_text()
    assert (export_dir / "assets.extra" / "top.txt").read_text() == source.read_text()


def test_none_plans_nothing() -> None:
    assert plan_assets_extra(None) == ()


@pytest.mark.parametrize(
    ("destination", "expected"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("/etc/passwd", "is absolute"),
        ("C:\\x.txt", "is absolute"),
        ("../outside.txt", "contains '..'"),
        ("a/../../b.txt", "contains '..'"),
        ("a\\b.txt", "backslash"),
        ("dir/", "does not name a file"),
        (".", "does not name a file"),
    ],
)
def test_bad_destinations_are_rejected(source: Path, destination: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected) as raised:
        plan_assets_extra({destination: str(source)})
    assert repr(destination) in str(raised.value)


def test_missing_sources_and_directories_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not an existing local file"):
        plan_assets_extra({"x.txt": str(tmp_path / "missing.txt")})
    with pytest.raises(ValueError, match="is not an existing local file"):
        plan_assets_extra({"x.txt": str(tmp_path)})


def test_two_keys_naming_one_file_are_rejected(source: Path) -> None:
    with pytest.raises(ValueError, match="same file as another entry"):
        plan_assets_extra({"a/b.txt": str(source), "a//b.txt": str(source)})


def test_a_non_mapping_is_rejected(source: Path) -> None:
    with pytest.raises(ValueError, match="must be a mapping"):
        plan_assets_extra([("a.txt", str(source))])  # type: ignore[arg-type]


def test_a_destination_cannot_be_both_a_file_and_a_directory(source: Path) -> None:
    expected = "'a' is a file, but 'a/b.txt' needs it to be a directory"
    with pytest.raises(ValueError, match=re.escape(expected)):
        plan_assets_extra({"a/b.txt": str(source), "a": str(source)})
