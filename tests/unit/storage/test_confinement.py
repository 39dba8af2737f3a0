"""Confinement: with allowed roots, every Storage call outside them is refused before
anything is read or written, local paths judged after resolving `..` and symbolic links."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest
from hostile_trees import snapshot

from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.storage.base import Storage
from airflow_tf_export.storage.confinement import (
    ALLOWED_ROOTS_ENV,
    AllowedRoots,
    ConfinedStorage,
    ConfinementError,
    confined_storage,
)
from airflow_tf_export.storage.local import LocalStorage

TEMPLATE = ExportMetadata(
    exporter="latest",
    strategy="latest",
    version=0,
    checkpoint_path="/model/ckpt-1",
    global_step=1,
    created_at="2027-01-15T08:00:00Z",
)


def _roots(*roots: str | Path) -> AllowedRoots:
    value = ", ".join(str(r) for r in roots)
    parsed = AllowedRoots.parse(value, ALLOWED_ROOTS_ENV)
    assert parsed is not None
    return parsed


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """`allowed/` (the root, with a model) and `outside/` (a secret) side by side, plus
    `allowed-old/`, whose name starts with the root's."""
    (tmp_path / "allowed" / "model").mkdir(parents=True)
    (tmp_path / "allowed" / "model" / "checkpoint").write_text("x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_text("not yours")
    (tmp_path / "allowed-old").mkdir()
    (tmp_path / "allowed-old" / "secret.txt").write_text("old")
    return tmp_path


def test_unset_or_blank_means_no_confinement() -> None:
    assert AllowedRoots.parse(None, ALLOWED_ROOTS_ENV) is None
    assert AllowedRoots.parse(" ,\n", ALLOWED_ROOTS_ENV) is None
    storage = confined_storage("/anywhere", None, lambda uri: LocalStorage())
    assert isinstance(storage, LocalStorage)


@pytest.mark.parametrize("root", ["relative/dir", "s3://bucket/x", "gs://Bad_Bucket"])
def test_a_root_that_is_not_one_is_named_with_the_setting(root: str) -> None:
    with pytest.raises(ConfinementError) as raised:
        AllowedRoots.parse(f"/data, {root}", ALLOWED_ROOTS_ENV)
    message = str(raised.value)
    assert ALLOWED_ROOTS_ENV in message and repr(root) in message and "/data" in message


@pytest.mark.parametrize(
    "uri",
    [
        "{tmp}/outside/secret.txt",
        "{tmp}/allowed/../outside/secret.txt",
        "{tmp}/allowed/model/../../outside",
        "{tmp}/allowed-old/secret.txt",
        "file://{tmp}/outside",
        "{tmp}/allowed/link-out/secret.txt",
        "{tmp}/allowed/link-out",
        "gs://bucket/model",
    ],
)
def test_paths_outside_the_roots_are_refused_naming_path_setting_and_value(
    tree: Path, uri: str
) -> None:
    (tree / "allowed" / "link-out").symlink_to(tree / "outside")
    roots = _roots(tree / "allowed", "gs://other-bucket/models")
    with pytest.raises(ConfinementError) as raised:
        roots.check(uri.format(tmp=tree), "read")
    message = str(raised.value)
    assert ALLOWED_ROOTS_ENV in message
    assert repr(roots.value) in message
    assert "refusing to read" in message


@pytest.mark.parametrize(
    "uri",
    [
        "{tmp}/allowed",
        "{tmp}/allowed/model/checkpoint",
        "{tmp}/allowed/./model/../model/not-yet-written",
        "file://{tmp}/allowed/model",
        "{tmp}/allowed/link-in/checkpoint",
        "gs://other-bucket/models/m1/export",
    ],
)
def test_paths_under_a_root_pass(tree: Path, uri: str) -> None:
    (tree / "allowed" / "link-in").symlink_to(tree / "allowed" / "model")
    _roots(tree / "allowed", "gs://other-bucket/models").check(uri.format(tmp=tree), "read")


def test_a_root_reached_through_a_link_holds_what_the_link_holds(tree: Path) -> None:
    (tree / "alias").symlink_to(tree / "allowed")
    roots = _roots(tree / "alias")
    roots.check(str(tree / "allowed" / "model"), "read")
    roots.check(str(tree / "alias" / "model"), "read")
    with pytest.raises(ConfinementError, match="outside"):
        roots.check(str(tree / "outside"), "read")


def test_a_glob_is_judged_by_its_literal_directory(tree: Path) -> None:
    roots = _roots(tree / "allowed")
    roots.check_pattern(str(tree / "allowed" / "model" / "eval" / "*.tfevents.*"), "search")
    with pytest.raises(ConfinementError):
        roots.check_pattern(str(tree / "allowed" / ".." / "*" / "secret.txt"), "search")
    with pytest.raises(ConfinementError):
        roots.check_pattern("/*/secret.txt", "search")


def test_every_storage_method_is_confined() -> None:
    """ConfinedStorage implements the whole protocol, so no call slips past it."""
    protocol = {n for n, _ in inspect.getmembers(Storage, inspect.isfunction) if n[0] != "_"}
    confined = {n for n, _ in inspect.getmembers(ConfinedStorage, inspect.isfunction)}
    assert protocol <= confined


def test_every_call_outside_is_refused_and_nothing_is_read_written_or_deleted(
    tree: Path,
) -> None:
    outside, model = tree / "outside", tree / "allowed" / "model"
    storage = ConfinedStorage(LocalStorage(), _roots(tree / "allowed"))
    secret, new = str(outside / "secret.txt"), str(outside / "new")
    before = snapshot(outside)
    source = tree / "allowed" / "saved"
    source.mkdir()
    (source / "saved_model.pb").write_bytes(b"graph")
    calls = {
        "list_dir": lambda: storage.list_dir(str(outside)),
        "list_dir_stamped": lambda: storage.list_dir_stamped(str(outside), "secret.txt"),
        "list_files": lambda: storage.list_files(str(outside)),
        "glob": lambda: storage.glob(str(outside / "*")),
        "exists": lambda: storage.exists(secret),
        "size": lambda: storage.size(secret),
        "read_bytes": lambda: storage.read_bytes(secret),
        "read_versioned": lambda: storage.read_versioned(secret),
        "write_bytes": lambda: storage.write_bytes(new, b"x"),
        "replace_if_unchanged": lambda: storage.replace_if_unchanged(secret, b"x", "g"),
        "download_dir": lambda: storage.download_dir(str(outside), tree / "down"),
        "download_named": lambda: storage.download_dir(
            str(model), tree / "down", ["../../outside/secret.txt"]
        ),
        "local_files": lambda: storage.local_files(str(outside), ["secret.txt"]).__enter__(),
        "local_files_named": lambda: storage.local_files(
            str(model), ["../../outside/secret.txt"]
        ).__enter__(),
        "upload_dir": lambda: storage.upload_dir(source, new),
        "delete_trees": lambda: storage.delete_trees([str(model / "checkpoint"), secret]),
        "delete_versions": lambda: storage.delete_versions(str(outside), [1]),
        "staging_in_use": lambda: storage.staging_in_use(str(outside)),
        "staging_dir": lambda: storage.staging_dir(new).__enter__(),
        "exporter_lock": lambda: storage.exporter_lock(new).__enter__(),
        "publish_version": lambda: storage.publish_version(source, new, TEMPLATE),
    }
    for name, call in calls.items():
        with pytest.raises(ConfinementError, match="outside the allowed roots"):
            call()
            pytest.fail(f"{name} was not refused")
    assert snapshot(outside) == before
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (model / "checkpoint").exists(), "a batch with one path outside deletes nothing"
    assert not (tree / "down").exists()


def test_glob_matches_that_lead_outside_are_refused(tree: Path) -> None:
    eval_dir = tree / "allowed" / "model" / "eval"
    eval_dir.mkdir()
    (eval_dir / "events.out.tfevents.1").write_bytes(b"e")
    storage = ConfinedStorage(LocalStorage(), _roots(tree / "allowed"))
    assert storage.glob(str(eval_dir / "*.tfevents.*")) == [str(eval_dir / "events.out.tfevents.1")]
    (eval_dir / "events.out.tfevents.2").symlink_to(tree / "outside" / "secret.txt")
    with pytest.raises(ConfinementError, match=r"events\.out\.tfevents\.2 \(it resolves to"):
        storage.glob(str(eval_dir / "*.tfevents.*"))


def test_calls_inside_pass_through(tree: Path) -> None:
    model = tree / "allowed" / "model"
    storage = confined_storage(str(model), _roots(tree / "allowed"), lambda uri: LocalStorage())
    assert isinstance(storage, ConfinedStorage)
    storage.write_bytes(str(model / "state"), b"ok")
    assert storage.read_bytes(str(model / "state")) == b"ok"
    assert [e.name for e in storage.list_dir(str(model))] == ["checkpoint", "state"]
    stamped = storage.list_dir_stamped(str(tree / "allowed"), "state")
    assert (list(stamped.stamps), stamped.others) == (["model"], [])
    with pytest.raises(ConfinementError, match="refusing to use"):
        confined_storage(
            str(tree / "outside"), _roots(tree / "allowed"), lambda uri: LocalStorage()
        )
