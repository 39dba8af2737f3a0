"""A real GCS server over HTTP for tests: the gcp-storage-emulator package in a subprocess.

`gcs_emulator` starts one in-memory emulator per test session and points
STORAGE_EMULATOR_HOST at it; `gcs_bucket` gives each test a client and a fresh bucket.
`RecordingProxy` sits between a client and the emulator: it records every HTTP request
(to count requests and check their parameters) and can enforce `ifGenerationMatch=0`,
which the emulator ignores but real GCS enforces; `GenerationEnforcingProxy` also enforces
`ifGenerationMatch=<generation>`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

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


# Two harness tweaks that leave the emulator's HTTP behaviour as it is:
# - it serves one request at a time from a listen backlog of 5 and closes every connection,
#   so 8 parallel uploads overflow the backlog and a dropped SYN costs a 1 s retransmit: a
#   deeper backlog removes that stall;
# - after every write it serialises the metadata of all objects into a `.meta` snapshot
#   (O(objects) per write), which an in-memory emulator only reads back at start-up: skipping
#   it keeps thousands of objects (the retention benchmark) from taking quadratic time.
_EMULATOR_MAIN = (
    "import http.server, sys; http.server.HTTPServer.request_queue_size = 128; "
    "from gcp_storage_emulator.storage import Storage; "
    "Storage._write_config_to_file = lambda self: None; "
    "from gcp_storage_emulator.__main__ import main; main(sys.argv[1:])"
)
_EMULATOR_ARGS = ("--host", "127.0.0.1", "--in-memory", "-q")


@contextlib.contextmanager
def running_emulator() -> Iterator[str]:
    """Start an in-memory emulator subprocess; yield its base URL; stop it on exit."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", _EMULATOR_MAIN, "start", *_EMULATOR_ARGS, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_listening(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """Base URL of a running emulator; STORAGE_EMULATOR_HOST is set here and for children."""
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    with running_emulator() as host:
        os.environ["STORAGE_EMULATOR_HOST"] = host
        try:
            yield host
        finally:
            if previous is None:
                os.environ.pop("STORAGE_EMULATOR_HOST", None)
            else:
                os.environ["STORAGE_EMULATOR_HOST"] = previous


def emulator_client(api_endpoint: str | None = None) -> Any:
    """A google-cloud-storage client for the emulator (anonymous credentials, test project);
    `api_endpoint` points it elsewhere (e.g. at a RecordingProxy)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    return storage.Client(
        project="test-project", credentials=AnonymousCredentials(), client_options=options
    )


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients killed mid-request (crash tests) reset connections: not an error here."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the proxy forwarded (or refused with 412)."""

    method: str
    path: str
    query: dict[str, list[str]]
    object_name: str | None
    status: int
    range: str | None = None


class RecordingProxy:
    """An HTTP server that forwards every request to `upstream` and records it.

    `enforce_create_only=True` answers 412 to an upload carrying `ifGenerationMatch=0` when
    the object already exists, as real GCS does (the emulator accepts it). The check and the
    upload run under one lock, so concurrent create-only uploads of one name cannot both
    succeed. `delay_seconds` slows every request (to widen windows for crash tests).
    `before_forward(method, object_name)`, if set, runs before each request is checked and
    forwarded: tests use it to let a second writer act at an exact point of a publish.
    """

    def __init__(
        self, upstream: str, *, enforce_create_only: bool = False, delay_seconds: float = 0.0
    ) -> None:
        self.upstream = urlsplit(upstream)
        self.enforce_create_only = enforce_create_only
        self.delay_seconds = delay_seconds
        self.requests: list[RecordedRequest] = []
        self.before_forward: Callable[[str, str | None], None] | None = None
        self._lock = threading.Lock()
        self._create_lock = threading.Lock()
        self._server = _ProxyServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """Where clients should send requests."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def reset(self) -> None:
        """Forget the requests recorded so far."""
        with self._lock:
            self.requests.clear()

    def count(self) -> int:
        """How many requests were recorded."""
        with self._lock:
            return len(self.requests)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(
            self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=60
        )
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _exists(self, bucket: str, name: str) -> bool:
        path = f"/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
        status, _headers, _body = self._forward("GET", path, {}, b"")
        return status == 200

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                """Silent."""

            def _handle(self) -> None:
                if proxy.delay_seconds:
                    time.sleep(proxy.delay_seconds)
                body = self._read_body()
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                name = _uploaded_object_name(query, self.headers.get("Content-Type", ""), body)
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"
                }
                headers["Content-Length"] = str(len(body))
                if proxy.before_forward is not None:
                    proxy.before_forward(self.command, name)
                create_only = query.get("ifGenerationMatch") == ["0"] and name is not None
                if proxy.enforce_create_only and create_only:
                    with proxy._create_lock:
                        bucket = parts.path.split("/b/", 1)[1].split("/", 1)[0]
                        if proxy._exists(bucket, name or ""):
                            result = _precondition_failed()
                        else:
                            result = proxy._forward(self.command, self.path, headers, body)
                else:
                    result = proxy._forward(self.command, self.path, headers, body)
                status, response_headers, payload = result
                proxy._record(
                    RecordedRequest(
                        self.command, parts.path, query, name, status, self.headers.get("Range")
                    )
                )
                self.send_response(status)
                for key, value in response_headers:
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        return Handler


def _uploaded_object_name(
    query: dict[str, list[str]], content_type: str, body: bytes
) -> str | None:
    """The object an upload request creates: `?name=`, or the JSON metadata part."""
    if "uploadType" not in query:
        return None
    if "name" in query:
        return query["name"][0]
    if content_type.startswith("multipart/"):
        message = BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        parts = message.get_payload()
        assert isinstance(parts, list) and isinstance(parts[0], Message)
        return str(json.loads(str(parts[0].get_payload()))["name"])
    if content_type.startswith("application/json") and body:
        return str(json.loads(body)["name"])
    return None


def _precondition_failed() -> tuple[int, list[tuple[str, str]], bytes]:
    payload = {
        "error": {
            "code": 412,
            "message": "At least one of the pre-conditions you specified did not hold.",
            "errors": [{"reason": "conditionNotMet", "domain": "global"}],
        }
    }
    return 412, [("Content-Type", "application/json")], json.dumps(payload).encode()


class GenerationEnforcingProxy(RecordingProxy):
    """Also answers 412 to an upload or delete whose `ifGenerationMatch=<n>` (n != 0) is not
    the object's current generation, checked and forwarded under one lock."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, enforce_create_only=True)
        self._generation_lock = threading.Lock()

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        parts = urlsplit(path)
        query = parse_qs(parts.query)
        expected = query.get("ifGenerationMatch", ["0"])[0]
        if expected == "0":
            return super()._forward(method, path, headers, body)
        bucket, _, rest = parts.path.split("/b/", 1)[1].partition("/o")
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        name = _uploaded_object_name(query, content_type, body)
        name = name or unquote(rest.lstrip("/"))
        meta_path = f"/storage/v1/b/{bucket}/o/{name.replace('/', '%2F')}"
        with self._generation_lock:
            status, _, meta = super()._forward("GET", meta_path, {}, b"")
            if status != 200 or json.loads(meta)["generation"] != expected:
                return _precondition_failed()
            return super()._forward(method, path, headers, body)


@pytest.fixture
def gcs_proxy(gcs_emulator: str) -> Iterator[RecordingProxy]:
    """A RecordingProxy in front of the session emulator (records only, enforces nothing)."""
    with RecordingProxy(gcs_emulator) as proxy:
        yield proxy


@pytest.fixture
def enforcing_gcs_proxy(gcs_emulator: str) -> Iterator[RecordingProxy]:
    """A RecordingProxy that also enforces `ifGenerationMatch=0` as real GCS does."""
    with RecordingProxy(gcs_emulator, enforce_create_only=True) as proxy:
        yield proxy


@pytest.fixture
def generation_enforcing_gcs_proxy(gcs_emulator: str) -> Iterator[GenerationEnforcingProxy]:
    """A GenerationEnforcingProxy in front of the session emulator."""
    with GenerationEnforcingProxy(gcs_emulator) as proxy:
        yield proxy


@pytest.fixture
def gcs_bucket(gcs_emulator: str) -> tuple[Any, str]:
    """A client and the name of a bucket created for this test only."""
    client = emulator_client()
    name = f"test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(name)
    return client, name
