"""A real GCS server over HTTP for tests: the gcp-storage-emulator package in a subprocess.

`gcs_emulator` starts one in-memory emulator per test session and points
STORAGE_EMULATOR_HOST at it; `gcs_bucket` gives each test a client and a fresh bucket.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gcp-storage-emulator exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"gcp-storage-emulator did not listen on port {port} within {timeout}s")


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """Base URL of a running emulator; STORAGE_EMULATOR_HOST is set here and for children."""
    port = _free_port()
    emulator = Path(sys.executable).parent / "gcp-storage-emulator"
    process = subprocess.Popen(
        [str(emulator), "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    try:
        _wait_until_listening(port, process)
        os.environ["STORAGE_EMULATOR_HOST"] = host
        yield host
    finally:
        process.terminate()
        process.wait(timeout=10)
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


def emulator_client() -> Any:
    """A google-cloud-storage client for the emulator (anonymous credentials, test project)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test-project", credentials=AnonymousCredentials())


@pytest.fixture
def gcs_bucket(gcs_emulator: str) -> tuple[Any, str]:
    """A client and the name of a bucket created for this test only."""
    client = emulator_client()
    name = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(name)
    return client, name
