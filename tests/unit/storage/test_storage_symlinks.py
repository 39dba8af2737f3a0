"""Local disk never follows a symbolic link into a walk: link loops, dangling links and
links out of the tree neither hang nor fail a listing, a scan or retention; they are
reported and kept, and a version never holds one."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

import pytest
from hostile_trees import finishes, plant_hostile_links, snapshot

from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.core.retention import KeepNewest, plan_retention
from airflow_tf_export.storage.base import (
    Entry,
    StorageNotFoundError,
    SymbolicLinkError,
    VersionIntegrityError,
)
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.local import LocalStorage

NOW = 1_800_000_000
TEMPLATE = ExportMetadata(
    exporter="latest",
    strategy="latest",
    version=0,
    checkpoint_path="/model/ckpt-1",
    global_step=1,
    created_at="2027-01-15T08:00:00Z",
)


def _write_model(directory: Path) -> None:
    (directory / "variables").mkdir(parents=True, exist_ok=True)
    (directory / "variables" / "variables.index").write_bytes(b"index")
    (directory / "variables" / "variables.data-00000-of-00001").write_bytes(b"data" * 100)
    (directory / "saved_model.pb").write_bytes(b"graph")


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory outside every tree under test, which links lead to."""
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret.txt").write_text("not yours")
    _write_model(directory / "model")
    return directory


def test_listing_a_directory_reports_every_link_without_failing(
    tmp_path: Path, outside: Path
) -> None:
    planted = plant_hostile_links(tmp_path / "dir", outside)
    (tmp_path / "dir" / "file.txt").write_text("x")
    entries = {e.name: e for e in finishes(lambda: LocalStorage().list_dir(str(tmp_path / "dir")))}
    assert entries[planted.loop] == Entry(
        planted.loop, False, 0, entries[planted.loop].mtime, is_link=True
    )
    assert not entries[planted.dangling].is_dir and entries[planted.dangling].is_link
    assert entries[planted.outside].is_dir and entries[planted.outside].is_link
    assert entries[planted.doubling_dir].is_dir and not entries[planted.doubling_dir].is_link
    assert entries["file.txt"] == Entry("file.txt", False, 1, entries["file.txt"].mtime)


def test_a_walk_lists_links_as_links_and_never_enters_one(tmp_path: Path, outside: Path) -> None:
    planted = plant_hostile_links(tmp_path / "dir", outside)
    (tmp_path / "dir" / "sub").mkdir()
    (tmp_path / "dir" / "sub" / "file.txt").write_text("x")
    files = finishes(lambda: LocalStorage().list_files(str(tmp_path / "dir")))
    assert {e.name for e in files if not e.is_link} == {"sub/file.txt"}
    assert {e.name for e in files if e.is_link} == {
        f"{planted.doubling_dir}/a",
        f"{planted.doubling_dir}/b",
        planted.loop,
        planted.dangling,
        planted.outside,
        planted.loop_named_version,
        planted.dangling_named_version,
        planted.outside_named_version,
    }
    within = LocalStorage().list_files(str(tmp_path / "dir"), within=["sub", planted.outside])
    assert [(e.name, e.is_link) for e in within] == [
        (planted.outside, True),
        ("sub/file.txt", False),
    ]


def test_a_glob_skips_matches_that_do_not_resolve_and_reads_through_file_links(
    tmp_path: Path, outside: Path
) -> None:
    eval_dir = tmp_path / "model" / "eval"
    eval_dir.mkdir(parents=True)
    (eval_dir / "events.out.tfevents.1").write_bytes(b"e")
    (eval_dir / "events.out.tfevents.loop").symlink_to("events.out.tfevents.loop")
    (eval_dir / "events.out.tfevents.dangling").symlink_to(tmp_path / "none")
    (eval_dir / "events.out.tfevents.linked").symlink_to(outside / "secret.txt")
    found = LocalStorage().glob(str(eval_dir / "*.tfevents.*"))
    assert found == [
        str(eval_dir / "events.out.tfevents.1"),
        str(eval_dir / "events.out.tfevents.linked"),
    ]


def test_copying_a_tree_refuses_a_link_and_copies_nothing(tmp_path: Path, outside: Path) -> None:
    source = tmp_path / "source"
    _write_model(source)
    (source / "variables" / "stolen").symlink_to(outside / "secret.txt")
    storage = LocalStorage()
    with pytest.raises(SymbolicLinkError, match=f"{source / 'variables' / 'stolen'} is a symbolic"):
        storage.upload_dir(source, str(tmp_path / "copy"))
    assert not (tmp_path / "copy").exists()
    with pytest.raises(SymbolicLinkError, match="stolen"):
        storage.download_dir(str(source), tmp_path / "download")
    assert not (tmp_path / "download").exists()
    storage.download_dir(str(source), tmp_path / "named", ["saved_model.pb", "variables/stolen"])
    assert (tmp_path / "named" / "variables" / "stolen").read_text() == "not yours"


@pytest.mark.parametrize("kind", ["loop", "outside file", "outside dir"])
def test_a_savedmodel_holding_a_link_is_refused_and_nothing_is_published(
    tmp_path: Path, outside: Path, kind: str
) -> None:
    storage, exporter = LocalStorage(), tmp_path / "export" / "latest"
    target = {
        "loop": Path("loop"),
        "outside file": outside / "secret.txt",
        "outside dir": outside,
    }[kind]
    for in_place in (True, False):
        source = tmp_path / "written"
        with storage.staging_dir(str(exporter)) as staging:
            model = staging if in_place else source
            _write_model(model)
            (model / "assets").mkdir()
            (model / "assets" / "loop").symlink_to(target)
            with pytest.raises(SymbolicLinkError, match=f"{model / 'assets' / 'loop'}"):
                finishes(lambda m=model: storage.publish_version(m, str(exporter), TEMPLATE))
        assert ExporterDir(storage, str(exporter)).scan().committed == []
        assert [n for n in os.listdir(exporter) if n.isdigit()] == []
    assert snapshot(outside) == {
        "secret.txt": b"not yours",
        "model/saved_model.pb": b"graph",
        "model/variables/variables.index": b"index",
        "model/variables/variables.data-00000-of-00001": b"data" * 100,
    }


def _published(storage: LocalStorage, exporter: Path, count: int) -> list[int]:
    versions = []
    for offset in range(count):
        with storage.staging_dir(str(exporter)) as staging:
            _write_model(staging)
            meta = storage.publish_version(
                staging, str(exporter), TEMPLATE, now_seconds=NOW + offset
            )
        versions.append(meta.version)
    return versions


def test_a_scan_reports_integer_links_as_invalid_and_keeps_every_link(
    tmp_path: Path, outside: Path
) -> None:
    storage, exporter = LocalStorage(), tmp_path / "export" / "latest"
    versions = _published(storage, exporter, 3)
    planted = plant_hostile_links(exporter, outside)
    before = snapshot(outside)
    exporter_dir = ExporterDir(storage, str(exporter))
    state = finishes(exporter_dir.scan)
    assert [m.version for m in state.committed] == versions
    assert [v for v, _ in state.invalid] == planted.integer_links
    for _, reason in state.invalid:
        assert "is a symbolic link, not a version directory: never followed" in reason
    assert state.staging == [] and state.foreign_versions == []

    def keep_newest(scanned: object) -> object:
        return plan_retention(
            state.committed, [KeepNewest(1)], staging=state.staging, invalid=state.invalid
        )

    _, plan = finishes(lambda: exporter_dir.retain(keep_newest))  # type: ignore[arg-type]
    assert plan.delete_versions == tuple(versions[:2])
    assert [v for v, _ in plan.invalid] == planted.integer_links
    for name in (*map(str, planted.integer_links), planted.loop, planted.dangling, planted.outside):
        assert (exporter / name).is_symlink()
    assert sorted(os.listdir(exporter / planted.doubling_dir)) == ["a", "b"]
    assert snapshot(outside) == before


class _RecordingStorage(LocalStorage):
    """The real local backend, recording which children each recursive listing entered."""

    def __init__(self) -> None:
        self.walked: list[Collection[str] | None] = []

    def list_files(self, uri: str, *, within: Collection[str] | None = None) -> list[Entry]:
        self.walked.append(None if within is None else sorted(within))
        return super().list_files(uri, within=within)


def test_a_scan_enters_only_version_and_staging_dirs(tmp_path: Path, outside: Path) -> None:
    storage, exporter = _RecordingStorage(), tmp_path / "export" / "latest"
    (version,) = _published(storage, exporter, 1)
    plant_hostile_links(exporter, outside)
    _write_model(exporter / "notes")
    _write_model(exporter / "temp-notes")
    abandoned = f"temp-airflow-tf-export-{'0' * 32}"
    _write_model(exporter / abandoned)
    (exporter / "17").mkdir()
    storage.walked.clear()
    state = ExporterDir(storage, str(exporter)).scan()
    assert storage.walked == [sorted([str(version), "17", abandoned])]
    assert [f.version for f in state.foreign_versions] == [17]
    assert sorted(s.name for s in state.staging) == ["17", abandoned, "temp-notes"]


def test_a_link_inside_a_version_makes_it_invalid_and_verify_names_it(
    tmp_path: Path, outside: Path
) -> None:
    storage, exporter = LocalStorage(), tmp_path / "export" / "latest"
    (version,) = _published(storage, exporter, 1)
    data = exporter / str(version) / "variables" / "variables.data-00000-of-00001"
    data.unlink()
    data.symlink_to(outside / "model" / "variables" / "variables.data-00000-of-00001")
    exporter_dir = ExporterDir(storage, str(exporter))
    ((invalid, reason),) = exporter_dir.scan().invalid
    assert invalid == version
    assert f"{data} is a symbolic link" in reason
    with pytest.raises(VersionIntegrityError, match=f"{data} is a symbolic link"):
        exporter_dir.verify(version)


def test_a_foreign_version_whose_variables_are_links_has_an_unreadable_step(
    tmp_path: Path, outside: Path
) -> None:
    exporter = tmp_path / "export" / "estimator"
    foreign = exporter / "1500000000"
    _write_model(foreign)
    (foreign / "variables" / "variables.index").unlink()
    (foreign / "variables" / "variables.index").symlink_to("variables.index")
    (foreign / "a").symlink_to(".")
    (foreign / "b").symlink_to(".")
    state = finishes(ExporterDir(LocalStorage(), str(exporter)).scan)
    (found,) = state.foreign_versions
    assert found.global_step is None
    assert (
        found.unreadable
        == f"{foreign / 'variables' / 'variables.index'} is a symbolic link: never followed"
    )
    assert state.foreign == [1500000000]


def test_an_exporter_dir_that_is_a_loop_is_named(tmp_path: Path) -> None:
    loop = tmp_path / "export"
    loop.symlink_to(loop)
    with pytest.raises(Exception, match=f"{loop}.*symbolic links"):
        ExporterDir(LocalStorage(), str(loop)).scan()
    with pytest.raises(StorageNotFoundError):
        LocalStorage().list_files(str(tmp_path / "absent"))
