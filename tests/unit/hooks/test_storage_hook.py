"""StorageHook: the Storage for a URI; GCS clients from an Airflow connection, only for gs://."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException
from netguard import network_guard

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


# A syntactically valid service-account JSON key whose private key is not a key. Its
# token_uri is Google's real one: nothing may contact it, since loading the key fails first.
MALFORMED_KEYS = {
    "no PEM framing": "not a private key",
    "bad PEM body": "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----\n",
    "not a key inside": "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
}


def _connection_with_key(private_key: str) -> str:
    key = {
        "type": "service_account",
        "project_id": "p-1",
        "private_key_id": "0123456789abcdef",
        "private_key": private_key,
        "client_email": "exporter@p-1.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    extra = {"keyfile_dict": json.dumps(key), "project": "p-1"}
    return json.dumps({"conn_type": "google_cloud_platform", "extra": extra})


@pytest.mark.parametrize("private_key", MALFORMED_KEYS.values(), ids=list(MALFORMED_KEYS))
def test_a_malformed_key_fails_naming_the_connection_before_any_network(
    private_key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A real Airflow connection from an AIRFLOW_CONN_ variable. The session's network guard
    (tests/netguard) is installed; a log of this test's own shows that nothing outside
    127.0.0.1 was even looked up while the client was being built."""
    assert getattr(socket, "_airflow_tf_export_network_guard", False)
    guard_log = tmp_path / "blocked.log"
    monkeypatch.setenv(network_guard.LOG_ENV, str(guard_log))
    monkeypatch.setenv("AIRFLOW_CONN_EXPORTER_GCP", _connection_with_key(private_key))

    with pytest.raises(AirflowFailException) as raised:
        StorageHook(gcp_conn_id="exporter_gcp").storage_for("gs://bucket-a/models/m")

    message = str(raised.value)
    assert message.startswith(
        "cannot build a GCS client from Airflow connection 'exporter_gcp' "
        "(google_cloud_platform): its credentials could not be loaded; fix the connection's "
        "service-account key (keyfile_dict, key_path or key_secret_name): "
    )
    original = raised.value.__cause__
    assert original is not None and str(original) in message
    assert not guard_log.exists()


def test_the_malformed_key_error_keeps_the_original_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_EXPORTER_GCP", _connection_with_key(MALFORMED_KEYS["no PEM framing"])
    )
    with pytest.raises(AirflowFailException, match="Unable to load PEM file"):
        StorageHook(gcp_conn_id="exporter_gcp").get_conn()


def test_without_allowed_roots_any_path_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW__TF_EXPORT__ALLOWED_ROOTS", raising=False)
    assert isinstance(StorageHook().storage_for("/anywhere/at/all"), LocalStorage)


def test_allowed_roots_confine_every_storage_the_hook_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The option is read through Airflow's configuration (here from its environment
    variable, as a deployment sets it) at each call."""
    allowed, outside = tmp_path / "models", tmp_path / "elsewhere"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "m").symlink_to(outside)
    value = f"{allowed}, gs://bucket-a/models"
    monkeypatch.setenv("AIRFLOW__TF_EXPORT__ALLOWED_ROOTS", value)
    monkeypatch.setenv("AIRFLOW_CONN_UNIT_GCS", ANONYMOUS_GCP)
    hook = StorageHook(gcp_conn_id="unit_gcs")
    storage = hook.storage_for(str(allowed / "model"))
    storage.write_bytes(str(allowed / "model" / "f"), b"x")
    for refused in (str(outside), str(allowed / "m" / "x"), "gs://bucket-a/other", "gs://bucket-b"):
        with pytest.raises(AirflowFailException) as raised:
            hook.storage_for(refused)
        assert "[tf_export] allowed_roots" in str(raised.value)
        assert repr(value) in str(raised.value)
    with pytest.raises(AirflowFailException, match=f"refusing to write {outside / 'f'}"):
        storage.write_bytes(str(outside / "f"), b"x")
    assert list(outside.iterdir()) == []
    hook.storage_for("gs://bucket-a/models/m1")
    monkeypatch.setenv("AIRFLOW__TF_EXPORT__ALLOWED_ROOTS", "models/relative")
    with pytest.raises(AirflowFailException, match="'models/relative', which is not a root"):
        hook.storage_for(str(allowed))
