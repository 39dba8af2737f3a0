"""StorageHook: the Storage for a URI; GCS clients from an Airflow connection, only for gs://."""

from __future__ import annotations

import json

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_tf_export.hooks.storage import StorageHook
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage

ANONYMOUS_GCP = json.dumps(
    {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "p-1"}}
)


def test_local_uris_need_no_connection() -> None:
    hook = StorageHook(gcp_conn_id="not_defined_anywhere")
    assert isinstance(hook.storage_for("/models/m"), LocalStorage)
    assert isinstance(hook.storage_for("file:///models/m"), LocalStorage)


def test_gcs_client_comes_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_UNIT_GCS", ANONYMOUS_GCP)
    storage = StorageHook(gcp_conn_id="unit_gcs").storage_for("gs://bucket-a/models/m")
    assert isinstance(storage, GcsStorage)
    assert StorageHook(gcp_conn_id="unit_gcs").get_conn().project == "p-1"


def test_an_unknown_connection_fails_naming_it() -> None:
    with pytest.raises(AirflowFailException, match="'no_such_conn' is not defined"):
        StorageHook(gcp_conn_id="no_such_conn").storage_for("gs://bucket-a/m")


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models/m", "relative local path 'models/m'"),
        ("s3://bucket/m", "unsupported URI scheme 's3'"),
        ("gs:///m", "names no bucket"),
        ("", "non-empty string"),
    ],
)
def test_bad_uris_fail_naming_them(uri: str, message: str) -> None:
    with pytest.raises(AirflowFailException, match=message):
        StorageHook().storage_for(uri)


def test_default_connection_name() -> None:
    assert StorageHook().gcp_conn_id == StorageHook.default_conn_name == "google_cloud_default"
