"""`read_versioned` + `replace_if_unchanged`: an atomic rewrite that never overwrites another
writer's update, on local disk and on the GCS emulator (real HTTP).

The emulator enforces no preconditions, so GCS runs through GenerationEnforcingProxy, which
answers 412 to `ifGenerationMatch=<n>` when the object is not at generation n, as GCS does.
A "rival" is a second writer (a trainer saving its state file) acting between our read and
our write.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from gcs_fixtures import GenerationEnforcingProxy, emulator_client
from storage_test_models import Backend

from airflow_tf_export.storage import StorageError, StorageNotFoundError
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage

OLD = b'model_checkpoint_path: "ckpt-2"\nall_model_checkpoint_paths: "ckpt-1"\n'
NEW = b'model_checkpoint_path: "ckpt-2"\n'
RIVAL = b'model_checkpoint_path: "ckpt-3"\n'


@pytest.fixture(params=["local", "gcs"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return Backend("local", LocalStorage(), str(tmp_path / "root"))
    proxy = request.getfixturevalue("generation_enforcing_gcs_proxy")
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    emulator_client(proxy.url).create_bucket(bucket)
    return Backend("gcs", GcsStorage(emulator_client(proxy.url)), f"gs://{bucket}/root")


def rival_writer(backend: Backend) -> Callable[[str, bytes], None]:
    """Another process's write: a fresh storage object (its own client on GCS)."""
    if backend.name == "local":
        return LocalStorage().write_bytes
    assert isinstance(backend.storage, GcsStorage)
    return backend.storage.write_bytes


def test_an_unchanged_file_is_replaced(backend: Backend) -> None:
    uri = backend.uri("model", "checkpoint")
    backend.storage.write_bytes(uri, OLD)
    read = backend.storage.read_versioned(uri)
    assert read.data == OLD
    assert backend.storage.replace_if_unchanged(uri, NEW, read.generation) is True
    assert backend.storage.read_bytes(uri) == NEW
    again = backend.storage.read_versioned(uri)
    assert again.generation != read.generation
    # The generation read before the rewrite is stale now: a second rewrite with it fails.
    assert backend.storage.replace_if_unchanged(uri, OLD, read.generation) is False
    assert backend.storage.read_bytes(uri) == NEW
    assert sorted(e.name for e in backend.storage.list_dir(backend.uri("model"))) == ["checkpoint"]


def test_a_file_another_writer_changed_since_it_was_read_is_not_overwritten(
    backend: Backend,
) -> None:
    uri = backend.uri("model", "checkpoint")
    backend.storage.write_bytes(uri, OLD)
    read = backend.storage.read_versioned(uri)
    rival_writer(backend)(uri, RIVAL)
    assert backend.storage.replace_if_unchanged(uri, NEW, read.generation) is False
    assert backend.storage.read_bytes(uri) == RIVAL


def test_a_file_removed_since_it_was_read_is_not_recreated(backend: Backend) -> None:
    uri = backend.uri("model", "checkpoint")
    backend.storage.write_bytes(uri, OLD)
    backend.storage.write_bytes(backend.uri("model", "other"), b"x")
    read = backend.storage.read_versioned(uri)
    backend.storage.delete_trees([uri])
    assert backend.storage.replace_if_unchanged(uri, NEW, read.generation) is False
    assert not backend.storage.exists(uri)
    assert [e.name for e in backend.storage.list_dir(backend.uri("model"))] == ["other"]


def test_reading_an_absent_file_is_not_found(backend: Backend) -> None:
    backend.storage.write_bytes(backend.uri("model", "other"), b"x")
    with pytest.raises(StorageNotFoundError, match="checkpoint"):
        backend.storage.read_versioned(backend.uri("model", "checkpoint"))


def test_gcs_rewrite_is_one_conditional_upload_and_a_412_for_our_own_bytes_is_success(
    generation_enforcing_gcs_proxy: GenerationEnforcingProxy,
) -> None:
    """A retried request whose first attempt landed gets 412: the object then holds exactly
    what we wrote, and that counts as written. Simulated by a rival writing our bytes first."""
    proxy = generation_enforcing_gcs_proxy
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    emulator_client(proxy.url).create_bucket(bucket)
    storage = GcsStorage(emulator_client(proxy.url))
    uri = f"gs://{bucket}/model/checkpoint"
    storage.write_bytes(uri, OLD)
    read = storage.read_versioned(uri)
    proxy.reset()
    assert storage.replace_if_unchanged(uri, NEW, read.generation) is True
    (upload,) = [r for r in proxy.requests if r.object_name == "model/checkpoint"]
    assert upload.query["ifGenerationMatch"] == [read.generation]

    read = storage.read_versioned(uri)
    rival = GcsStorage(emulator_client(proxy.upstream.geturl()))

    def first_attempt_landed(method: str, name: str | None) -> None:
        if name == "model/checkpoint":
            proxy.before_forward = None
            rival.write_bytes(uri, OLD)

    proxy.before_forward = first_attempt_landed
    assert storage.replace_if_unchanged(uri, OLD, read.generation) is True
    assert [r.status for r in proxy.requests if r.object_name == "model/checkpoint"][-1] == 412


def test_gcs_read_of_an_object_replaced_between_metadata_and_download_reads_again(
    generation_enforcing_gcs_proxy: GenerationEnforcingProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The download asks for the generation the metadata gave: when a rival replaced the
    object in between, GCS answers 412 and the read starts over, so data and generation
    always belong together."""
    proxy = generation_enforcing_gcs_proxy
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    emulator_client(proxy.url).create_bucket(bucket)
    storage = GcsStorage(emulator_client(proxy.url))
    rival = GcsStorage(emulator_client(proxy.url))
    uri = f"gs://{bucket}/model/checkpoint"
    storage.write_bytes(uri, OLD)

    forward = proxy._forward
    rival_wrote: list[bool] = []

    def rival_writes_before_the_first_download(
        method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        if path.startswith("/download/") and not rival_wrote:
            rival_wrote.append(True)
            rival.write_bytes(uri, RIVAL)
        return forward(method, path, headers, body)

    proxy.reset()
    monkeypatch.setattr(proxy, "_forward", rival_writes_before_the_first_download)
    read = storage.read_versioned(uri)
    assert read.data == RIVAL
    downloads = [r.status for r in proxy.requests if r.path.startswith("/download/")]
    assert downloads == [412, 200]
    assert storage.replace_if_unchanged(uri, NEW, read.generation) is True


def test_local_in_place_write_keeping_size_and_mtime_is_still_a_change(tmp_path: Path) -> None:
    """A writer that rewrites the file in place (same inode), same size, within the clock's
    granularity (same mtime): the content digest still tells."""
    path = tmp_path / "checkpoint"
    path.write_bytes(OLD)
    storage = LocalStorage()
    read = storage.read_versioned(str(path))
    stat = path.stat()
    with path.open("r+b") as handle:
        handle.write(OLD.replace(b"ckpt-1", b"ckpt-9"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_ino == stat.st_ino
    assert storage.replace_if_unchanged(str(path), NEW, read.generation) is False
    assert b"ckpt-9" in path.read_bytes()


def test_local_rewrite_that_fails_at_the_rename_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The crash point is simulated by making the rename fail (a real crash cannot be staged
    at that instant here): the file is the old one, whole, and no temporary is left."""
    path = tmp_path / "checkpoint"
    path.write_bytes(OLD)
    storage = LocalStorage()
    read = storage.read_versioned(str(path))

    def no_rename(source: object, target: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(StorageError, match="Input/output error"):
        storage.replace_if_unchanged(str(path), NEW, read.generation)
    assert path.read_bytes() == OLD
    assert os.listdir(tmp_path) == ["checkpoint"]
