"""URI parsing: what is accepted, how it is normalised, and errors that name the bad value."""

from __future__ import annotations

import pytest

from airflow_tf_export.storage import storage_for
from airflow_tf_export.storage.local import LocalStorage
from airflow_tf_export.storage.uris import StorageUri, parse_uri


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/data/model/export/", StorageUri("file", "", "/data/model/export")),
        ("/data//model/./export", StorageUri("file", "", "/data/model/export")),
        ("file:///data/model", StorageUri("file", "", "/data/model")),
        ("file://localhost/data/model", StorageUri("file", "", "/data/model")),
        ("gs://my-bucket", StorageUri("gs", "my-bucket", "")),
        ("gs://my-bucket/", StorageUri("gs", "my-bucket", "")),
        ("gs://my-bucket/model//export/", StorageUri("gs", "my-bucket", "model/export")),
    ],
)
def test_valid_uris_are_normalised(uri: str, expected: StorageUri) -> None:
    assert parse_uri(uri) == expected


def test_str_gives_back_a_canonical_uri() -> None:
    assert str(parse_uri("gs://b-1/a/b/")) == "gs://b-1/a/b"
    assert str(parse_uri("gs://b-1")) == "gs://b-1"
    assert str(parse_uri("file:///x/y")) == "/x/y"


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("gs://", r"'gs://' names no bucket"),
        ("gs:///model", r"'gs:///model' names no bucket"),
        ("gs://Bad_Bucket!/m", r"invalid bucket name 'Bad_Bucket!'"),
        ("gs://b-1/a/../b", r"must not contain '\.' or '\.\.'"),
        ("model/export", r"relative local path 'model/export' is not allowed"),
        ("./export", r"relative local path '\./export'"),
        ("s3://bucket/model", r"unsupported URI scheme 's3'"),
        ("file://host/data", r"must be file:///absolute/path"),
        ("", r"non-empty string"),
        ("/data/\x00x", r"NUL"),
    ],
)
def test_bad_uris_raise_value_error_naming_them(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_uri(uri)


def test_storage_for_picks_the_local_backend_without_importing_gcs() -> None:
    assert isinstance(storage_for("/tmp/model"), LocalStorage)
    assert isinstance(storage_for("file:///tmp/model"), LocalStorage)
    with pytest.raises(ValueError, match="names no bucket"):
        storage_for("gs://")


def test_a_backend_refuses_the_other_scheme() -> None:
    with pytest.raises(ValueError, match="local storage cannot handle the GCS URI"):
        LocalStorage().list_dir("gs://bucket/x")
