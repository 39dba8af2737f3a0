"""The pytest side of the network guard (tests/conftest.py loads it): installs the guard in
the pytest process and in every Python process a test starts, and fails the test phase
during which anything tried to leave loopback, even when the code that tried swallowed
the error."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path

import pytest
from netguard import network_guard

_GUARD_DIR = Path(__file__).parent
_blocked: network_guard.BlockedLog | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Guard this process; put sitecustomize.py on PYTHONPATH for child processes; all of
    them log blocked attempts to one file."""
    global _blocked
    handle, path = tempfile.mkstemp(prefix="network-guard-", suffix=".log")
    os.close(handle)
    os.environ[network_guard.LOG_ENV] = path
    inherited = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(_GUARD_DIR), *filter(None, inherited)])
    network_guard.install()
    _blocked = network_guard.BlockedLog(path)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the log file."""
    if _blocked is not None:
        Path(_blocked.path).unlink(missing_ok=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Fail the phase (setup, call, teardown) during which an attempt was logged."""
    report = yield
    lines = _blocked.new_lines() if _blocked is not None else []
    if lines:
        text = "network access outside 127.0.0.1 was attempted:\n" + "\n".join(lines)
        if report.failed:
            report.sections.append(("network guard", text))
        else:
            report.outcome = "failed"
            report.longrepr = text
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Attempts made outside any test (collection, a late background thread) fail the run."""
    lines = _blocked.new_lines() if _blocked is not None else []
    if lines:
        print(
            "\nnetwork access outside 127.0.0.1 was attempted:", *lines, sep="\n", file=sys.stderr
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
