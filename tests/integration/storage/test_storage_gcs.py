"""GCS-only behaviour, seen as real HTTP requests through a recording proxy in front of the
emulator: request counts, create-only preconditions, upload order, batching, missing buckets.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from gcs_fixtures import RecordingProxy, emulator_client
from storage_test_models import NOW, Backend, model_file_names, template, write_model_files

from airflow_tf_export.core.metadata import METADATA_FILENAME, metadata_checksum_name
from airflow_tf_export.storage import BucketNotFoundError, StorageError, storage_for
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.gcs import GcsStorage


def _backend(proxy: RecordingProxy, bucket: str | None = None) -> tuple[Backend, Any, str]:
    client = emulator_client(proxy.url)
    name = bucket or f"test-{uuid.uuid4().hex[:12]}"
    if bucket is None:
        client.create_bucket(name)
    proxy.reset()
    return Backend("gcs", GcsStorage(client), f"gs://{name}/model"), client, name


def _uploads(proxy: RecordingProxy) -> list[str]:
    return [r.object_name for r in proxy.requests if r.object_name is not None]


def test_publish_is_create_only_ordered_and_lists_with_a_delimiter(
    gcs_proxy: RecordingProxy,
) -> None:
    """Every object of a publish is uploaded with ifGenerationMatch=0 (create-only).

    The emulator does not enforce this precondition (it overwrites); real GCS answers 412.
    This test shows the parameter is on every request; the enforcing-proxy tests below show
    what the code does when the server refuses.
    """
    backend, client, bucket = _backend(gcs_proxy)
    exporter_uri = backend.uri("export", "latest")
    published = backend.publish(exporter_uri, step=1)
    requests = len(gcs_proxy.requests)

    uploads = [r for r in gcs_proxy.requests if r.object_name is not None]
    assert uploads and all(r.query.get("ifGenerationMatch") == ["0"] for r in uploads)
    names = [r.object_name for r in uploads]
    version_prefix = f"model/export/latest/{published.version}/"
    assert names[0] == f"model/export/latest/temp-claim-{published.version}"
    assert names[-1] == version_prefix + METADATA_FILENAME
    record = client.bucket(bucket).blob(names[-1]).download_as_bytes()
    assert names[-2] == version_prefix + metadata_checksum_name(record)
    assert names[-3] == version_prefix + "saved_model.pb"
    assert sorted(names[1:-3]) == sorted(
        version_prefix + n for n in model_file_names() if n != "saved_model.pb"
    )
    listing = gcs_proxy.requests[0]
    assert (listing.method, listing.query["delimiter"]) == ("GET", ["/"])
    assert listing.query["prefix"] == ["model/export/latest/"]
    deletes = [r for r in gcs_proxy.requests if r.method == "DELETE"]
    assert [r.path.rsplit("/", 1)[-1] for r in deletes] == [
        f"model%2Fexport%2Flatest%2Ftemp-claim-{published.version}"
    ]
    assert requests <= len(model_file_names()) + 7


def test_a_claim_lost_to_another_writer_moves_on_to_the_next_version(
    enforcing_gcs_proxy: RecordingProxy,
) -> None:
    backend, client, bucket = _backend(enforcing_gcs_proxy)
    exporter_uri = backend.uri("export", "latest")
    rival = emulator_client(enforcing_gcs_proxy.upstream.geturl())
    claim = f"model/export/latest/temp-claim-{NOW}"

    def rival_claims_first(method: str, name: str | None) -> None:
        if name == claim and not rival.bucket(bucket).blob(claim).exists():
            rival.bucket(bucket).blob(claim).upload_from_string(b"rival")

    enforcing_gcs_proxy.before_forward = rival_claims_first
    published = backend.publish(exporter_uri, step=1)
    enforcing_gcs_proxy.before_forward = None

    assert published.version == NOW + 1
    refused = [r for r in enforcing_gcs_proxy.requests if r.status == 412]
    assert [r.object_name for r in refused] == [claim]
    assert client.bucket(bucket).blob(claim).download_as_bytes() == b"rival"
    assert ExporterDir(backend.storage, exporter_uri).verify(NOW + 1).metadata == published


def test_a_file_created_by_another_writer_stops_the_publish_before_commit(
    enforcing_gcs_proxy: RecordingProxy,
) -> None:
    backend, _client, bucket = _backend(enforcing_gcs_proxy)
    exporter_uri = backend.uri("export", "latest")
    rival = emulator_client(enforcing_gcs_proxy.upstream.geturl())
    intruder = f"model/export/latest/{NOW}/variables/variables.index"

    def rival_writes_into_the_version(method: str, name: str | None) -> None:
        if name == intruder and not rival.bucket(bucket).blob(intruder).exists():
            rival.bucket(bucket).blob(intruder).upload_from_string(b"another model")

    enforcing_gcs_proxy.before_forward = rival_writes_into_the_version
    with pytest.raises(StorageError, match=r"variables/variables\.index was created by another"):
        backend.publish(exporter_uri, step=1)
    enforcing_gcs_proxy.before_forward = None

    uploaded = _uploads(enforcing_gcs_proxy)
    assert f"model/export/latest/{NOW}/saved_model.pb" not in uploaded
    assert f"model/export/latest/{NOW}/{METADATA_FILENAME}" not in uploaded
    state = ExporterDir(backend.storage, exporter_uri).scan()
    assert state.committed == []
    assert str(NOW) in [s.name for s in state.staging]


def test_a_retried_upload_that_already_landed_is_accepted(
    enforcing_gcs_proxy: RecordingProxy, tmp_path: Any
) -> None:
    """A create-only request retried after its first attempt succeeded gets 412; the object
    holds our own bytes (same CRC32C), so the publish goes on."""
    backend, _client, bucket = _backend(enforcing_gcs_proxy)
    exporter_uri = backend.uri("export", "latest")
    write_model_files(tmp_path, step=1)
    twin = f"model/export/latest/{NOW}/fingerprint.pb"
    rival = emulator_client(enforcing_gcs_proxy.upstream.geturl())

    def first_attempt_landed(method: str, name: str | None) -> None:
        if name == twin and not rival.bucket(bucket).blob(twin).exists():
            rival.bucket(bucket).blob(twin).upload_from_filename(str(tmp_path / "fingerprint.pb"))

    enforcing_gcs_proxy.before_forward = first_attempt_landed
    published = backend.publish(exporter_uri, step=1)
    enforcing_gcs_proxy.before_forward = None

    assert [r.object_name for r in enforcing_gcs_proxy.requests if r.status == 412] == [twin]
    assert (
        ExporterDir(backend.storage, exporter_uri).verify(published.version).metadata == published
    )


def test_concurrent_publishers_get_distinct_committed_versions(
    enforcing_gcs_proxy: RecordingProxy,
) -> None:
    backend, _client, _bucket = _backend(enforcing_gcs_proxy)
    exporter_uri = backend.uri("export", "latest")
    start = threading.Barrier(4)
    versions: list[int] = []

    def publisher(step: int) -> None:
        own = Backend("gcs", GcsStorage(emulator_client(enforcing_gcs_proxy.url)), backend.root)
        start.wait()
        versions.append(own.publish(exporter_uri, step=step).version)

    threads = [threading.Thread(target=publisher, args=(s,)) for s in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == [NOW, NOW + 1, NOW + 2, NOW + 3]
    exporter = ExporterDir(backend.storage, exporter_uri)
    committed = exporter.committed()
    assert sorted(m.global_step for m in committed) == [1, 2, 3, 4]
    for meta in committed:
        assert exporter.verify(meta.version).metadata == meta


def test_deletes_go_in_batches_of_at_most_100(gcs_proxy: RecordingProxy) -> None:
    """120 objects under 30 version prefixes: one listing and two batch requests."""
    backend, _client, bucket = _backend(gcs_proxy)
    direct = emulator_client().bucket(bucket)
    for version in range(1, 31):
        for index in range(4):
            direct.blob(f"model/export/{version}/f{index}").upload_from_string(b"x")
    direct.blob("model/export/31/kept").upload_from_string(b"x")
    backend.storage.delete_trees([backend.uri("export", str(v)) for v in range(1, 31)])
    assert [(r.method, r.path) for r in gcs_proxy.requests] == [
        ("GET", f"/storage/v1/b/{bucket}/o")
    ] + [("POST", "/batch/storage/v1")] * 2
    assert [e.name for e in backend.storage.list_files(backend.uri("export"))] == ["31/kept"]


def test_a_ranged_read_is_one_ranged_request(gcs_proxy: RecordingProxy) -> None:
    backend, _client, _bucket = _backend(gcs_proxy)
    backend.storage.write_bytes(backend.uri("big"), bytes(range(256)) * 1000)
    gcs_proxy.reset()
    assert backend.storage.read_bytes(backend.uri("big"), 1000, 1010) == bytes(range(232, 242))
    (request,) = gcs_proxy.requests
    assert request.range == "bytes=1000-1009"


def test_listing_an_exporter_is_one_request_per_page_not_per_object(
    gcs_proxy: RecordingProxy,
) -> None:
    backend, _client, _bucket = _backend(gcs_proxy)
    for version in range(1, 41):
        backend.storage.write_bytes(backend.uri("export", str(version), "saved_model.pb"), b"x")
    gcs_proxy.reset()
    assert len(backend.storage.list_dir(backend.uri("export"))) == 40
    assert len(backend.storage.list_files(backend.uri("export"))) == 40
    assert len(gcs_proxy.requests) == 2


def test_a_bucket_that_does_not_exist_is_named_and_nothing_is_created(
    gcs_proxy: RecordingProxy, tmp_path: Any
) -> None:
    backend, client, _bucket = _backend(gcs_proxy, bucket="no-such-bucket-a2")
    exporter = ExporterDir(backend.storage, backend.uri("export", "latest"))
    write_model_files(tmp_path, step=1)
    for call in (
        exporter.scan,
        lambda: exporter.verify(NOW),
        lambda: backend.storage.read_bytes(backend.uri("x")),
        lambda: backend.storage.publish_version(
            tmp_path, backend.uri("export", "latest"), template(1)
        ),
    ):
        with pytest.raises(BucketNotFoundError, match="bucket 'no-such-bucket-a2'"):
            call()
    assert client.lookup_bucket("no-such-bucket-a2") is None


def test_storage_for_builds_the_gcs_backend_from_the_injected_factory(
    gcs_proxy: RecordingProxy,
) -> None:
    made: list[Any] = []

    def factory() -> Any:
        made.append(emulator_client(gcs_proxy.url))
        return made[-1]

    storage = storage_for("gs://some-bucket/model", gcs_client_factory=factory)
    assert isinstance(storage, GcsStorage) and len(made) == 1
    with pytest.raises(BucketNotFoundError, match="some-bucket"):
        storage.list_dir("gs://some-bucket/model")
