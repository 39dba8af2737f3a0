"""The network guard of tests/conftest.py: a test reaching outside 127.0.0.1 fails, even when
the code that tried swallowed the error, in the pytest process and in processes it starts.

The blocked attempts below are logged to a file of this test's own (not the session's), so
they do not fail this test; one case runs a whole inner pytest session to show that they
fail the test that made them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from netguard import network_guard

# TEST-NET-1 (RFC 5737): never routed, so nothing is contacted even if the guard failed.
OUTSIDE = ("192.0.2.1", 9)
TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture
def private_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "blocked.log"
    monkeypatch.setenv(network_guard.LOG_ENV, str(log))
    return log


def test_a_connection_outside_loopback_is_blocked_and_logged(private_log: Path) -> None:
    with pytest.raises(network_guard.NetworkBlocked, match=r"192\.0\.2\.1"):
        socket.create_connection(OUTSIDE, timeout=1)
    with socket.socket(socket.AF_INET6) as sock, pytest.raises(network_guard.NetworkBlocked):
        sock.connect_ex(("2001:db8::1", 9))
    lines = network_guard.BlockedLog(str(private_log)).new_lines()
    assert len(lines) == 2
    assert "socket.connect to ('192.0.2.1', 9)" in lines[0]
    assert "test_network_guard.py" in lines[0]


def test_a_lookup_of_a_public_name_is_blocked(private_log: Path) -> None:
    with pytest.raises(network_guard.NameResolutionBlocked, match=r"example\.com"):
        socket.getaddrinfo("example.com", 443)
    with pytest.raises(socket.gaierror):
        socket.gethostbyname("storage.googleapis.com")
    with pytest.raises(OSError):
        socket.gethostbyaddr("192.0.2.1")
    assert len(network_guard.BlockedLog(str(private_log)).new_lines()) == 3


def test_loopback_and_local_names_still_work(private_log: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with socket.create_connection(("localhost", port), timeout=5):
            accepted, _ = server.accept()
            accepted.close()
    assert socket.getaddrinfo("localhost", port)
    assert socket.getaddrinfo(None, 0, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    assert not private_log.exists()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("localhost", True),
        ("api.localhost", True),
        (b"127.0.0.1", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("::ffff:8.8.8.8", False),
        ("storage.googleapis.com", False),
    ],
)
def test_what_counts_as_loopback(host: str | bytes, loopback: bool) -> None:
    assert network_guard.is_loopback(host) is loopback


def test_a_child_python_process_is_guarded_too(private_log: Path) -> None:
    script = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection({OUTSIDE!r}, timeout=1)\n"
        "except OSError as error:\n"
        "    print(type(error).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "NetworkBlocked", done.stderr
    (line,) = network_guard.BlockedLog(str(private_log)).new_lines()
    assert line.startswith("pid ") and not line.startswith(f"pid {os.getpid()}:")
    assert "('192.0.2.1', 9)" in line


def test_a_swallowed_attempt_fails_the_test_that_made_it(tmp_path: Path) -> None:
    (tmp_path / "test_swallows.py").write_text(
        "import socket\n\n"
        "def test_offline_fallback():\n"
        "    try:\n"
        f"        socket.create_connection({OUTSIDE!r}, timeout=1)\n"
        "    except OSError:\n"
        "        pass\n\n"
        "def test_local_only():\n"
        "    assert socket.getaddrinfo('localhost', 80)\n"
    )
    plugin = ("-p", "netguard.network_guard_plugin")
    isolated = ("--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path / "test_swallows.py"))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    inner = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *plugin, *isolated],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
    )
    output = inner.stdout + inner.stderr
    assert inner.returncode == 1, output
    assert "1 failed, 1 passed" in output, output
    assert "FAILED test_swallows.py::test_offline_fallback" in output, output
    assert "network access outside 127.0.0.1 was attempted" in output, output
