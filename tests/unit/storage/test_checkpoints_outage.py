"""A storage outage while resolving the checkpoint stays a retryable StorageError: bad input
(CheckpointError, a ValueError) makes operators fail without retrying, an outage must not."""

from __future__ import annotations

import socket

import pytest

from airflow_tf_export.storage import StorageError
from airflow_tf_export.storage.checkpoints import CheckpointError, resolve_checkpoint
from airflow_tf_export.storage.gcs import GcsStorage


def test_an_unreachable_gcs_endpoint_is_not_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real client against a port nobody listens on, its retry deadline cut to 0.5 s."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    from google.cloud.storage.retry import DEFAULT_RETRY

    monkeypatch.setattr(DEFAULT_RETRY, "_timeout", 0.5)
    monkeypatch.setattr(DEFAULT_RETRY, "_deadline", 0.5)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: connections are refused
    client = storage.Client(
        project="test-project",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
    )
    with pytest.raises(StorageError, match="gs://bucket/model/checkpoint") as raised:
        resolve_checkpoint(GcsStorage(client), "gs://bucket/model", None)
    assert not isinstance(raised.value, CheckpointError | ValueError)
