"""The shared storage suite: each test runs on local disk and on the GCS emulator over HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from storage_test_models import NOW, Backend, model_file_names, template, write_model_files

from airflow_tf_export.core.metadata import METADATA_FILENAME
from airflow_tf_export.core.retention import KeepNewest, RetentionPlan, plan_retention
from airflow_tf_export.storage import (
    StorageError,
    StorageNotFoundError,
    VersionIntegrityError,
)
from airflow_tf_export.storage.exporter_dir import ExporterDir

ABANDONED = "temp-airflow-tf-export-" + "e" * 32  # a staging dir of ours

# ---- primitives -------------------------------------------------------------------------


def test_write_then_read_whole_files_and_byte_ranges(backend: Backend) -> None:
    uri = backend.uri("dir", "file.bin")
    backend.storage.write_bytes(uri, b"0123456789")
    read = backend.storage.read_bytes
    assert read(uri) == b"0123456789"
    assert read(uri, 2, 7) == b"23456"
    assert read(uri, 5) == b"56789"
    assert read(uri, 3, 3) == b""
    assert read(uri, 8, 50) == b"89"
    backend.storage.write_bytes(uri, b"new")
    assert read(uri) == b"new"
    assert backend.storage.size(uri) == 3


def test_exists_is_true_for_files_and_non_empty_directories_only(backend: Backend) -> None:
    backend.storage.write_bytes(backend.uri("a", "b", "c.txt"), b"x")
    assert backend.storage.exists(backend.uri("a", "b", "c.txt"))
    assert backend.storage.exists(backend.uri("a", "b"))
    assert not backend.storage.exists(backend.uri("a", "missing"))
    assert not backend.storage.exists(backend.uri("a", "b", "c"))


def test_list_dir_gives_direct_children_and_list_files_everything_below(backend: Backend) -> None:
    for name in ("d/x.txt", "d/sub/y.txt", "d/sub/deeper/z.txt"):
        backend.storage.write_bytes(backend.uri(*name.split("/")), name.encode())
    children = backend.storage.list_dir(backend.uri("d"))
    assert [(e.name, e.is_dir) for e in children] == [("sub", True), ("x.txt", False)]
    assert children[1].size == len(b"d/x.txt")
    files = backend.storage.list_files(backend.uri("d"))
    assert [(e.name, e.size) for e in files] == [
        ("sub/deeper/z.txt", 18),
        ("sub/y.txt", 11),
        ("x.txt", 7),
    ]
    assert all(e.mtime is not None for e in files)


def test_missing_paths_raise_not_found_naming_the_uri(backend: Backend) -> None:
    missing = backend.uri("nowhere", "file.txt")
    for call in (
        lambda: backend.storage.read_bytes(missing),
        lambda: backend.storage.size(missing),
        lambda: backend.storage.list_dir(missing),
        lambda: backend.storage.list_files(missing),
    ):
        with pytest.raises(StorageNotFoundError, match=r"nowhere/file\.txt"):
            call()


def test_a_file_where_a_directory_is_expected_is_named(backend: Backend) -> None:
    backend.storage.write_bytes(backend.uri("export", "latest"), b"not a directory")
    with pytest.raises(StorageError, match="export/latest") as raised:
        backend.storage.list_dir(backend.uri("export", "latest"))
    assert not isinstance(raised.value, StorageNotFoundError)
    with pytest.raises(StorageError, match="export/latest"):
        ExporterDir(backend.storage, backend.uri("export", "latest")).scan()
    with pytest.raises(StorageError, match="export/latest"):
        backend.publish(backend.uri("export", "latest"), step=1)
    assert backend.storage.read_bytes(backend.uri("export", "latest")) == b"not a directory"


def test_glob_info_gives_sizes_and_times_from_the_listing(backend: Backend) -> None:
    for name, data in (("eval/a.tfevents.1", b"abc"), ("eval/b.tfevents.2", b"hello")):
        backend.storage.write_bytes(backend.uri(*name.split("/")), data)
    backend.storage.write_bytes(backend.uri("eval", "sub", "c.tfevents.3"), b"x")
    found = backend.storage.glob_info(backend.uri("eval", "*.tfevents.*"))
    assert [(info.uri, info.size) for info in found] == [
        (backend.uri("eval", "a.tfevents.1"), 3),
        (backend.uri("eval", "b.tfevents.2"), 5),
    ]
    assert all(info.mtime is not None for info in found)
    assert backend.storage.glob(backend.uri("eval", "*.tfevents.*")) == [i.uri for i in found]
    literal = backend.storage.glob_info(backend.uri("eval", "b.tfevents.2"))
    assert [(info.uri, info.size) for info in literal] == [(backend.uri("eval", "b.tfevents.2"), 5)]
    assert backend.storage.glob_info(backend.uri("eval", "missing")) == []


def test_glob_wildcards_stay_within_one_path_segment(backend: Backend) -> None:
    for name in (
        "eval/events.out.tfevents.1",
        "eval/events.out.tfevents.2",
        "eval/sub/events.out.tfevents.3",
        "train/events.out.tfevents.4",
    ):
        backend.storage.write_bytes(backend.uri(*name.split("/")), b"e")
    assert backend.storage.glob(backend.uri("eval", "*.tfevents.*")) == [
        backend.uri("eval", "events.out.tfevents.1"),
        backend.uri("eval", "events.out.tfevents.2"),
    ]
    assert backend.storage.glob(backend.uri("*", "events.out.tfevents.[14]")) == [
        backend.uri("eval", "events.out.tfevents.1"),
        backend.uri("train", "events.out.tfevents.4"),
    ]
    # '?' is a wildcard of the pattern, not the start of a URI query.
    assert backend.storage.glob(backend.uri("eval", "events.out.tfevents.?")) == [
        backend.uri("eval", "events.out.tfevents.1"),
        backend.uri("eval", "events.out.tfevents.2"),
    ]
    assert backend.storage.glob(backend.uri("nothing", "*")) == []


def test_delete_trees_removes_files_and_trees_and_ignores_absent_ones(backend: Backend) -> None:
    for name in ("t/1/a", "t/1/b/c", "t/10/a", "t/2/a", "t/file"):
        backend.storage.write_bytes(backend.uri(*name.split("/")), b"x")
    backend.storage.delete_trees(
        [backend.uri("t", "1"), backend.uri("t", "file"), backend.uri("t", "9")]
    )
    remaining = [e.name for e in backend.storage.list_files(backend.uri("t"))]
    assert remaining == ["10/a", "2/a"]


def test_upload_dir_and_download_dir_round_trip(backend: Backend, tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_model_files(source, step=7)
    backend.storage.upload_dir(source, backend.uri("copy"))
    target = tmp_path / "target"
    backend.storage.download_dir(backend.uri("copy"), target)
    for name in model_file_names():
        assert (target / name).read_bytes() == (source / name).read_bytes()
    only = tmp_path / "only"
    backend.storage.download_dir(backend.uri("copy"), only, ["saved_model.pb"])
    assert [p.name for p in only.rglob("*")] == ["saved_model.pb"]


def test_local_files_gives_the_named_files_at_local_paths(backend: Backend, tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_model_files(source, step=7)
    backend.storage.upload_dir(source, backend.uri("ckpt"))
    names = ["saved_model.pb", "variables/variables.index"]
    with backend.storage.local_files(backend.uri("ckpt"), names) as local:
        for name in names:
            assert (local / name).read_bytes() == (source / name).read_bytes()
    with (
        pytest.raises(StorageNotFoundError, match=r"absent\.index"),
        backend.storage.local_files(backend.uri("ckpt"), ["absent.index"]),
    ):
        pytest.fail("a missing file was made local")


def test_local_files_reads_local_disk_in_place_and_removes_a_download(
    backend: Backend, tmp_path: Path
) -> None:
    """Local disk copies nothing (a large checkpoint costs no copy); a GCS download is a
    temporary directory, gone on exit."""
    backend.storage.write_bytes(backend.uri("ckpt", "ckpt-1.index"), b"index")
    with backend.storage.local_files(backend.uri("ckpt"), ["ckpt-1.index"]) as local:
        if backend.name == "local":
            assert local == Path(backend.uri("ckpt"))
        else:
            assert local.is_dir()
    assert backend.name == "local" or not local.exists()


# ---- publishing -------------------------------------------------------------------------


def test_publish_commits_a_version_that_verifies(backend: Backend, tmp_path: Path) -> None:
    exporter_uri = backend.uri("export", "latest")
    published = backend.publish(exporter_uri, step=100)
    assert published.version == NOW
    assert [e.path for e in published.manifest] == sorted(model_file_names())
    exporter = ExporterDir(backend.storage, exporter_uri)
    state = exporter.scan()
    assert state.committed == [published]
    assert state.staging == [] and state.invalid == []
    assert exporter.verify(NOW).metadata == published
    stored = backend.storage.read_bytes(backend.uri("export", "latest", str(NOW), "saved_model.pb"))
    write_model_files(tmp_path / "expected", step=100)
    assert stored == (tmp_path / "expected" / "saved_model.pb").read_bytes()
    metadata = backend.storage.read_bytes(
        backend.uri("export", "latest", str(NOW), METADATA_FILENAME)
    )
    assert json.loads(metadata)["version"] == NOW


def test_versions_strictly_increase_even_when_the_clock_is_behind(backend: Backend) -> None:
    exporter_uri = backend.uri("export", "latest")
    versions = [
        backend.publish(exporter_uri, step=1, now=NOW).version,
        backend.publish(exporter_uri, step=2, now=NOW).version,
        backend.publish(exporter_uri, step=3, now=NOW - 10_000).version,
        backend.publish(exporter_uri, step=4, now=NOW + 500).version,
    ]
    assert versions == [NOW, NOW + 1, NOW + 2, NOW + 500]
    committed = ExporterDir(backend.storage, exporter_uri).committed()
    assert [m.version for m in committed] == versions
    assert [m.global_step for m in committed] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        (lambda d: (d / "variables").mkdir(parents=True), "neither saved_model.pb"),
        (
            lambda d: (
                write_model_files(d, 1),
                (d / METADATA_FILENAME).write_text("{}"),
            ),
            "already holds export_metadata.json",
        ),
    ],
    ids=["no-saved-model", "metadata-present"],
)
def test_publish_refuses_a_source_that_is_not_a_savedmodel(
    backend: Backend, tmp_path: Path, prepare: object, message: str
) -> None:
    exporter_uri = backend.uri("export", "latest")
    kept = backend.publish(exporter_uri, step=1)
    source = tmp_path / "source"
    source.mkdir()
    assert callable(prepare)
    prepare(source)
    with pytest.raises(StorageError, match=message) as raised:
        backend.storage.publish_version(source, exporter_uri, template(2), now_seconds=NOW + 5)
    assert str(source) in str(raised.value)
    exporter = ExporterDir(backend.storage, exporter_uri)
    assert exporter.committed() == [kept]
    assert exporter.verify(kept.version).metadata == kept


def test_publish_of_a_missing_source_names_it(backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=str(tmp_path / "absent")):
        backend.storage.publish_version(
            tmp_path / "absent", backend.uri("export", "latest"), template(1)
        )


def test_a_writer_that_fails_publishes_nothing(backend: Backend) -> None:
    exporter_uri = backend.uri("export", "latest")
    with (
        pytest.raises(RuntimeError, match="writer died"),
        backend.storage.staging_dir(exporter_uri) as staging,
    ):
        write_model_files(staging, step=1)
        raise RuntimeError("writer died")
    state = ExporterDir(backend.storage, exporter_uri).scan()
    assert state.committed == [] and state.invalid == [] and state.staging == []


# ---- scanning, verification, bad input --------------------------------------------------


def test_scan_of_an_exporter_that_does_not_exist_yet_is_empty(backend: Backend) -> None:
    exporter = ExporterDir(backend.storage, backend.uri("export", "never"))
    state = exporter.scan()
    assert (state.committed, state.staging, state.invalid) == ([], [], [])
    assert exporter.newest_committed() is None


def test_scan_classifies_committed_staging_invalid_and_ignores_the_rest(backend: Backend) -> None:
    exporter_uri = backend.uri("export", "latest")
    good = backend.publish(exporter_uri, step=1)
    resized = backend.publish(exporter_uri, step=2)
    write = backend.storage.write_bytes
    write(backend.uri("export", "latest", ABANDONED, "saved_model.pb"), b"partial")
    write(backend.uri("export", "latest", str(NOW + 100), "saved_model.pb"), b"no metadata")
    write(backend.uri("export", "latest", str(NOW + 200), "saved_model.pb"), b"pb")
    write(backend.uri("export", "latest", str(NOW + 200), METADATA_FILENAME), b"{not json")
    write(backend.uri("export", "latest", str(NOW + 300)), b"an integer-named file")
    write(backend.uri("export", "latest", "notes.txt"), b"left alone")
    write(
        backend.uri("export", "latest", str(resized.version), "variables", "variables.index"),
        b"short",
    )

    exporter = ExporterDir(backend.storage, exporter_uri)
    state = exporter.scan()

    assert state.committed == [good]
    assert sorted(s.name for s in state.staging) == [str(NOW + 100), ABANDONED]
    invalid = dict(state.invalid)
    assert sorted(invalid) == [resized.version, NOW + 200, NOW + 300]
    assert "variables/variables.index" in invalid[resized.version]
    assert "has 5 bytes" in invalid[resized.version]
    assert "not valid JSON" in invalid[NOW + 200]
    assert f"{NOW + 200}/{METADATA_FILENAME}" in invalid[NOW + 200]
    assert "is a file" in invalid[NOW + 300]
    assert exporter.newest_committed() == good


def test_verify_names_a_corrupted_file_of_the_same_size(backend: Backend) -> None:
    exporter_uri = backend.uri("export", "latest")
    published = backend.publish(exporter_uri, step=1)
    target = backend.uri("export", "latest", str(published.version), "assets", "vocab-2.txt")
    original = backend.storage.read_bytes(target)
    backend.storage.write_bytes(target, original[:-1] + b"!")
    exporter = ExporterDir(backend.storage, exporter_uri)
    assert exporter.committed() == [published], "a size-preserving change passes the cheap scan"
    with pytest.raises(VersionIntegrityError, match=r"assets/vocab-2.txt does not match"):
        exporter.verify(published.version)
    backend.storage.write_bytes(target, original)
    assert exporter.verify(published.version).metadata == published


def test_verify_of_a_missing_version_or_one_without_metadata(backend: Backend) -> None:
    exporter_uri = backend.uri("export", "latest")
    backend.publish(exporter_uri, step=1)
    backend.storage.write_bytes(backend.uri("export", "latest", "7", "saved_model.pb"), b"pb")
    exporter = ExporterDir(backend.storage, exporter_uri)
    with pytest.raises(StorageNotFoundError, match="version 5 does not exist"):
        exporter.verify(5)
    with pytest.raises(VersionIntegrityError, match=r"7 has no export_metadata\.json"):
        exporter.verify(7)


def test_metadata_that_is_not_json_is_named_by_verify(backend: Backend) -> None:
    exporter_uri = backend.uri("export", "latest")
    published = backend.publish(exporter_uri, step=1)
    metadata_uri = backend.uri("export", "latest", str(published.version), METADATA_FILENAME)
    backend.storage.write_bytes(metadata_uri, b"[1, 2")
    with pytest.raises(VersionIntegrityError, match="is not valid JSON") as raised:
        ExporterDir(backend.storage, exporter_uri).verify(published.version)
    assert metadata_uri in str(raised.value)


def test_staging_age_comes_from_the_newest_file(backend: Backend) -> None:
    exporter_uri = backend.uri("export", "latest")
    backend.storage.write_bytes(backend.uri("export", "latest", ABANDONED, "a"), b"a")
    exporter = ExporterDir(backend.storage, exporter_uri)
    (young,) = exporter.scan().staging
    assert 0 <= young.age_seconds < 600
    (old,) = exporter.scan(now_seconds=young.age_seconds + 7200 + time.time()).staging
    assert old.age_seconds > 7000


# ---- applying retention -----------------------------------------------------------------


def test_apply_deletes_exactly_what_the_plan_deletes(backend: Backend) -> None:
    exporter_uri = backend.uri("export", "latest")
    published = [backend.publish(exporter_uri, step=s) for s in range(1, 5)]
    backend.storage.write_bytes(backend.uri("export", "latest", ABANDONED, "a"), b"a")
    backend.storage.write_bytes(backend.uri("export", "latest", "notes.txt"), b"kept")
    exporter = ExporterDir(backend.storage, exporter_uri)
    state = exporter.scan(now_seconds=time.time() + 7200)
    plan = plan_retention(state.committed, [KeepNewest(2)], staging=state.staging)
    assert plan.delete_versions == (published[0].version, published[1].version)
    exporter.apply(plan)
    after = exporter.scan()
    assert after.committed == published[2:]
    assert after.staging == []
    assert backend.storage.read_bytes(backend.uri("export", "latest", "notes.txt")) == b"kept"
    for meta in after.committed:
        exporter.verify(meta.version)


def test_apply_refuses_a_plan_naming_something_else(backend: Backend) -> None:
    exporter_uri = backend.uri("export", "latest")
    backend.storage.write_bytes(backend.uri("export", "latest", "notes.txt"), b"kept")
    plan = RetentionPlan(items=(), staging_delete=("notes.txt",), staging_keep=())
    with pytest.raises(ValueError, match=r"'notes\.txt'"):
        ExporterDir(backend.storage, exporter_uri).apply(plan)
    assert backend.storage.exists(backend.uri("export", "latest", "notes.txt"))
