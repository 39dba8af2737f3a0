"""Local-disk specifics: rename-based publish without a copy, the fcntl lock, delete by
rename, and OS errors turned into messages that name the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_tf_export.core.metadata import (
    METADATA_FILENAME,
    ExportMetadata,
    metadata_checksum_name,
)
from airflow_tf_export.core.ownership import is_our_staging_name
from airflow_tf_export.core.retention import RetentionPlan, plan_retention
from airflow_tf_export.storage import StorageError, StorageNotFoundError
from airflow_tf_export.storage.base import EXPORTER_LOCK_NAME
from airflow_tf_export.storage.exporter_dir import ExporterDir, ExporterDirState
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


def test_publishing_the_staging_dir_renames_it_without_copying(tmp_path: Path) -> None:
    storage, exporter = LocalStorage(), str(tmp_path / "export" / "latest")
    with storage.staging_dir(exporter) as staging:
        assert staging.parent == Path(exporter) and is_our_staging_name(staging.name)
        _write_model(staging)
        inode = staging.stat().st_ino
        published = storage.publish_version(staging, exporter, TEMPLATE, now_seconds=NOW)
        assert not staging.exists()
    version_dir = Path(exporter) / str(NOW)
    assert version_dir.stat().st_ino == inode
    assert sorted(os.listdir(exporter)) == [EXPORTER_LOCK_NAME, str(NOW)]
    record = (version_dir / METADATA_FILENAME).read_bytes()
    assert sorted(os.listdir(version_dir)) == [
        METADATA_FILENAME,
        metadata_checksum_name(record),
        "saved_model.pb",
        "variables",
    ]
    assert ExporterDir(storage, exporter).verify(NOW).metadata == published


def test_every_file_and_directory_is_flushed_before_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fsyncs run beside the manifest's reads; all of them end before the version is
    renamed into place. (os.fsync and os.rename are wrapped to record the order; both still
    run: whether the bytes reached the disk cannot be observed here.)"""
    storage, exporter = LocalStorage(), tmp_path / "export"
    events: list[tuple[str, str]] = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def rename(source: str | Path, target: str | Path) -> None:
        events.append(("rename", str(target)))
        real_rename(source, target)

    with storage.staging_dir(str(exporter)) as staging:
        _write_model(staging)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "rename", rename)
        published = storage.publish_version(staging, str(exporter), TEMPLATE, now_seconds=NOW)
        flushed_before = {path for kind, path in events if kind == "fsync"}
        renamed = [path for kind, path in events if kind == "rename"]
    version = exporter / str(published.version)
    assert renamed == [str(version)]
    before_rename = {
        path for kind, path in events[: events.index(("rename", str(version)))] if kind == "fsync"
    }
    expected = {str(staging / p.relative_to(version)) for p in version.rglob("*")} | {str(staging)}
    assert expected <= before_rename == flushed_before - {str(exporter)}


def test_local_files_names_a_file_that_is_missing_or_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "ckpt-1.index").write_bytes(b"index")
    (tmp_path / "ckpt-1.data-00000-of-00001").mkdir()
    storage = LocalStorage()
    with storage.local_files(str(tmp_path), ["ckpt-1.index"]) as local:
        assert local == tmp_path
    with (
        pytest.raises(StorageError, match=r"ckpt-1\.data-00000-of-00001 is not a regular file"),
        storage.local_files(str(tmp_path), ["ckpt-1.index", "ckpt-1.data-00000-of-00001"]),
    ):
        pytest.fail("a directory was read as a checkpoint file")
    with (
        pytest.raises(StorageNotFoundError, match=r"ckpt-2\.index does not exist"),
        storage.local_files(str(tmp_path), ["ckpt-2.index"]),
    ):
        pytest.fail("a missing file was read")


def test_a_staging_dir_is_in_use_exactly_while_its_writer_holds_it(tmp_path: Path) -> None:
    """Another process sees the writer's lock; once the writer exits (or dies) it is gone."""
    storage, exporter = LocalStorage(), str(tmp_path / "export" / "latest")
    probe = (
        "import sys; from airflow_tf_export.storage.local import LocalStorage;"
        "print(LocalStorage().staging_in_use(sys.argv[1]))"
    )

    def seen_in_use(path: Path) -> str:
        return subprocess.run(
            [sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True
        ).stdout.strip()

    with storage.staging_dir(exporter) as staging:
        assert seen_in_use(staging) == "True"
        assert storage.staging_in_use(str(staging))
    assert seen_in_use(staging) == "False"
    killed = subprocess.run(
        [sys.executable, "-c", _HOLD_AND_DIE, exporter], capture_output=True, text=True
    )
    assert killed.returncode == -9
    (left,) = [p for p in Path(exporter).iterdir() if is_our_staging_name(p.name)]
    assert seen_in_use(left) == "False" and not storage.staging_in_use(str(left))
    assert not storage.staging_in_use(str(tmp_path / "absent"))


def test_retention_at_grace_zero_keeps_only_the_staging_dir_a_running_export_holds(
    tmp_path: Path,
) -> None:
    storage, uri = LocalStorage(), str(tmp_path / "export" / "latest")
    exporter = ExporterDir(storage, uri)
    subprocess.run([sys.executable, "-c", _HOLD_AND_DIE, uri], check=False)
    (dead,) = [p.name for p in Path(uri).iterdir() if is_our_staging_name(p.name)]

    def plan(state: ExporterDirState) -> RetentionPlan:
        return plan_retention(state.committed, [], staging=state.staging, staging_grace_seconds=0)

    with storage.staging_dir(uri) as running:
        _write_model(running)
        _state, planned = exporter.retain(plan)
        assert planned.staging_delete == (dead,)
        assert planned.in_use == (running.name,) and running.exists()
        assert f"{running.name} keep: staging dir in use by a running export" in planned.explain()
    assert sorted(os.listdir(uri)) == [EXPORTER_LOCK_NAME]


# A writer killed while it holds its staging dir (the dir stays behind, its lock does not).
_HOLD_AND_DIE = (
    "import os, signal, sys; from airflow_tf_export.storage.local import LocalStorage;"
    "cm = LocalStorage().staging_dir(sys.argv[1]); cm.__enter__();"
    "os.kill(os.getpid(), signal.SIGKILL)"
)


def test_delete_versions_removes_the_dirs_and_ignores_absent_ones(tmp_path: Path) -> None:
    storage, exporter = LocalStorage(), str(tmp_path / "export" / "latest")
    source = tmp_path / "model"
    _write_model(source)
    storage.publish_version(source, exporter, TEMPLATE, now_seconds=NOW)
    storage.publish_version(source, exporter, TEMPLATE, now_seconds=NOW)
    storage.delete_versions(exporter, [NOW, NOW + 5])
    assert sorted(os.listdir(exporter)) == [str(NOW + 1)]


def test_publishing_another_directory_copies_it_and_leaves_it_alone(tmp_path: Path) -> None:
    storage, exporter = LocalStorage(), str(tmp_path / "export" / "latest")
    source = tmp_path / "written-elsewhere"
    _write_model(source)
    storage.publish_version(source, exporter, TEMPLATE, now_seconds=NOW)
    assert (source / "saved_model.pb").read_bytes() == b"graph"
    assert not (source / METADATA_FILENAME).exists()
    assert sorted(os.listdir(exporter)) == [str(NOW)]


def test_an_integer_named_directory_in_the_way_is_skipped(tmp_path: Path) -> None:
    storage, exporter = LocalStorage(), tmp_path / "export" / "latest"
    (exporter / str(NOW)).mkdir(parents=True)
    (exporter / str(NOW) / "stray").write_text("left by hand")
    source = tmp_path / "model"
    _write_model(source)
    published = storage.publish_version(source, str(exporter), TEMPLATE, now_seconds=NOW)
    assert published.version == NOW + 1
    assert (exporter / str(NOW) / "stray").read_text() == "left by hand"


def test_the_exporter_lock_excludes_other_processes(tmp_path: Path) -> None:
    storage, exporter = LocalStorage(), str(tmp_path / "export" / "latest")
    probe = (
        "import fcntl, sys; fd = open(sys.argv[1], 'a');"
        "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)"
    )
    lock_path = str(Path(exporter) / EXPORTER_LOCK_NAME)
    with storage.exporter_lock(exporter):
        held = subprocess.run([sys.executable, "-c", probe, lock_path], capture_output=True)
        assert held.returncode != 0 and b"BlockingIOError" in held.stderr
    free = subprocess.run([sys.executable, "-c", probe, lock_path], capture_output=True)
    assert free.returncode == 0
    state = ExporterDir(storage, exporter).scan()
    assert (state.committed, state.staging, state.invalid) == ([], [], [])


def test_deleting_a_version_leaves_no_integer_or_staging_directory(tmp_path: Path) -> None:
    storage, exporter = LocalStorage(), tmp_path / "export"
    _write_model(exporter / "17")
    storage.delete_trees([str(exporter / "17"), str(exporter / "18")])
    assert os.listdir(exporter) == []


def test_os_errors_name_the_path(tmp_path: Path) -> None:
    storage = LocalStorage()
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(StorageError, match=f"{loop}.*symbolic links"):
        storage.list_dir(str(loop))
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match=f"{tmp_path / 'file' / 'below'}.*a file is where"):
        storage.read_bytes(str(tmp_path / "file" / "below"))
    with pytest.raises(StorageError, match="is a directory, expected a file"):
        storage.read_bytes(str(tmp_path))
    with pytest.raises(StorageNotFoundError, match=str(tmp_path / "absent")):
        storage.size(str(tmp_path / "absent"))
    with pytest.raises(ValueError, match="invalid byte range"):
        storage.read_bytes(str(tmp_path / "file"), 5, 2)


def test_write_bytes_replaces_atomically_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    storage = LocalStorage()
    target = tmp_path / "deep" / "state.json"
    storage.write_bytes(str(target), b"one")
    storage.write_bytes(str(target), b"two")
    assert target.read_bytes() == b"two"
    assert os.listdir(target.parent) == ["state.json"]
