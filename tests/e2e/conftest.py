"""Fixtures for end-to-end tests: a fresh PostgreSQL-backed Airflow with its components."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_stack import fresh_database, postgres_unreachable_reason


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database; skipped when PostgreSQL is unreachable."""
    reason = postgres_unreachable_reason()
    if reason:
        pytest.skip(f"end-to-end backfill needs PostgreSQL: {reason}")
    with fresh_database() as url:
        yield url


@pytest.fixture
def dags_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "dags"
    folder.mkdir()
    return folder
