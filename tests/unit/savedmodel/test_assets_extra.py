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
from airflow_tf_export.storage.confinement import AllowedRoots, ConfinementError


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


def test_a_source_that_is_a_link_is_copied_as_the_file_it_resolves_to(
    source: Path, tmp_path: Path
) -> None:
    """As Kubernetes mounts a ConfigMap: `vocab.txt -> ..data/vocab.txt`. The copy is a
    regular file: a version never holds a link."""
    mounted = tmp_path / "mount"
    (mounted / "..data").mkdir(parents=True)
    (mounted / "..data" / "vocab.txt").write_text("mounted\n")
    (mounted / "vocab.txt").symlink_to("..data/vocab.txt")
    plan = plan_assets_extra({"vocab.txt": str(mounted / "vocab.txt")})
    assert plan == (ExtraAsset(PurePosixPath("vocab.txt"), mounted / "..data" / "vocab.txt"),)
    copy_assets_extra(plan, tmp_path / "export")
    copied = tmp_path / "export" / "assets.extra" / "vocab.txt"
    assert not copied.is_symlink() and copied.read_text() == "mounted\n"


@pytest.mark.parametrize("target", ["loop.txt", "missing.txt"])
def test_a_link_that_does_not_resolve_is_named(tmp_path: Path, target: str) -> None:
    link = tmp_path / "loop.txt"
    link.symlink_to(target)
    with pytest.raises(ValueError, match="is a symbolic link that does not resolve") as raised:
        plan_assets_extra({"x.txt": str(link)})
    assert repr(str(link)) in str(raised.value)


def test_allowed_roots_refuse_a_source_outside_them_even_through_a_link(
    source: Path, tmp_path: Path
) -> None:
    allowed = tmp_path / "assets"
    allowed.mkdir()
    (allowed / "vocab.txt").write_text("ok\n")
    (allowed / "shadow").symlink_to(source)
    roots = AllowedRoots.parse(str(allowed), "[tf_export] allowed_roots")
    assert plan_assets_extra({"v.txt": str(allowed / "vocab.txt")}, roots) == (
        ExtraAsset(PurePosixPath("v.txt"), allowed / "vocab.txt"),
    )
    for outside in (str(allowed / "shadow"), str(source), f"{allowed}/../vocab.txt"):
        with pytest.raises(ConfinementError) as raised:
            plan_assets_extra({"v.txt": str(allowed / "vocab.txt"), "x.txt": outside}, roots)
        message = str(raised.value)
        assert f"refusing to copy into assets.extra/x.txt {outside}" in message
        assert f"[tf_export] allowed_roots = {str(allowed)!r}" in message
    with pytest.raises(ConfinementError, match="resolves to " + re.escape(str(source))):
        plan_assets_extra({"x.txt": str(allowed / "shadow")}, roots)
