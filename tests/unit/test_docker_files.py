"""docker/: no Docker engine runs here, so check what can be checked without building.

The files parse, every path they reference exists, and the versions they name match the
tested install (constraints file, pyproject extras, Python version).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
AIRFLOW_SERVICES = ("airflow-init", "api-server", "scheduler", "dag-processor", "triggerer")


def _constraint(package: str) -> str:
    for line in (REPO / "constraints-3.11.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise AssertionError(f"{package} is not pinned in constraints-3.11.txt")


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_base_image_is_the_pinned_airflow_for_python_311(dockerfile: str) -> None:
    (version,) = re.findall(r"^ARG AIRFLOW_VERSION=(\S+)$", dockerfile, re.M)
    assert version == _constraint("apache-airflow")
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python3.11 AS airflow" in dockerfile
    assert "FROM python:3.11-slim AS gcs-emulator" in dockerfile
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert ">=3.11" in pyproject["project"]["requires-python"]


def test_installs_use_the_constraints_file_and_existing_extras(dockerfile: str) -> None:
    installs = re.findall(r"pip install[^\n]*", dockerfile.replace("\\\n", " "))
    assert len(installs) == 2
    for install in installs:
        assert "constraints-3.11.txt" in install
    extras = set(re.findall(r"\[([a-z,]+)\]", dockerfile)[0].split(","))
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert extras <= set(declared["optional-dependencies"])
    _constraint("gcp-storage-emulator")


def test_copied_paths_exist(dockerfile: str) -> None:
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        sources = [part for part in line.split()[:-1] if not part.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


def test_compose_has_every_component(compose: dict[str, Any], dockerfile: str) -> None:
    services = compose["services"]
    assert set(AIRFLOW_SERVICES) | {"postgres", "gcs"} <= set(services)
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", dockerfile, re.M))
    for name, service in services.items():
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file(), name
            assert build["target"] in stages, name
    for name in AIRFLOW_SERVICES[1:]:
        assert services[name]["command"] == name


def test_compose_wires_airflow_components_together(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        api = urlparse(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
        assert api.hostname in services and api.path == "/execution/"
        database = urlparse(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
        assert database.hostname in services
        emulator = urlparse(env["STORAGE_EMULATOR_HOST"])
        assert emulator.hostname in services
        mounts = dict(volume.rsplit(":", 2)[:2] for volume in services[name]["volumes"])
        dags_source = next(
            src for src, dst in mounts.items() if dst == env["AIRFLOW__CORE__DAGS_FOLDER"]
        )
        assert (DOCKER / dags_source).resolve() == REPO / "dags"
