"""Transient GCS failures (retries exhausted, no connection) become StorageError naming the
URI, never a raw google-api-core or requests exception, and never a ValueError."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import requests
from google.api_core.exceptions import RetryError

from airflow_tf_export.storage import StorageError
from airflow_tf_export.storage.checkpoints import CheckpointError, resolve_checkpoint
from airflow_tf_export.storage.gcs import GcsStorage

URI = "gs://bucket/model/checkpoint"


class _FailingBlob:
    def __init__(self, error: Exception) -> None:
        self._error = error

    def download_as_bytes(self, **kwargs: Any) -> bytes:
        raise self._error


class _FailingClient:
    """A client whose every object download raises `error`."""

    def __init__(self, error: Exception) -> None:
        self._error = error

    def bucket(self, name: str) -> Any:
        client = self

        class _Bucket:
            def blob(self, path: str) -> _FailingBlob:
                return _FailingBlob(client._error)

        return _Bucket()


@pytest.mark.parametrize(
    "error",
    [
        RetryError("Timeout of 120.0s exceeded", cause=RuntimeError("503")),
        requests.exceptions.ConnectionError("connection refused"),
        requests.exceptions.ReadTimeout("read timed out"),
    ],
    ids=["retries-exhausted", "no-connection", "timeout"],
)
def test_a_transient_failure_is_a_storage_error_naming_the_uri(error: Exception) -> None:
    with pytest.raises(StorageError, match="GCS unreachable") as raised:
        GcsStorage(_FailingClient(error)).read_bytes(URI)
    assert type(raised.value) is StorageError
    assert URI in str(raised.value)


@pytest.fixture
def unreachable_client(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real client against a port nobody listens on, its retry deadline cut to 0.5 s (the
    library default is 120 s)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    from google.cloud.storage.retry import DEFAULT_RETRY

    monkeypatch.setattr(DEFAULT_RETRY, "_timeout", 0.5)
    monkeypatch.setattr(DEFAULT_RETRY, "_deadline", 0.5)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: connections are refused
    return storage.Client(
        project="test-project",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
    )


def test_an_unreachable_endpoint_fails_fast_with_a_storage_error(unreachable_client: Any) -> None:
    """StorageError, not RetryError."""
    started = time.monotonic()
    with pytest.raises(StorageError, match="GCS unreachable") as raised:
        GcsStorage(unreachable_client).read_bytes(URI)
    assert time.monotonic() - started < 10
    assert URI in str(raised.value)


def test_an_outage_while_resolving_the_checkpoint_is_not_bad_input(
    unreachable_client: Any,
) -> None:
    """Bad input (CheckpointError, a ValueError) makes operators fail without retrying; an
    outage must stay a retryable StorageError."""
    with pytest.raises(StorageError, match=URI) as raised:
        resolve_checkpoint(GcsStorage(unreachable_client), "gs://bucket/model", None)
    assert not isinstance(raised.value, CheckpointError | ValueError)
