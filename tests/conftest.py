"""Shared test setup: hypothesis profiles, markers from the test folder, and the network
guard that fails any test reaching outside 127.0.0.1 (tests/netguard/)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["gcs_fixtures", "netguard.network_guard_plugin"]

# "ci" is deterministic (derandomized) and has no per-example deadline: the machines are noisy.
settings.register_profile(
    "ci",
    max_examples=200,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

_TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test `unit`, `integration` or `e2e` after the folder it lives in."""
    for item in items:
        relative = Path(str(item.fspath)).relative_to(_TESTS)
        if relative.parts[0] in ("unit", "integration", "e2e"):
            item.add_marker(getattr(pytest.mark, relative.parts[0]))
