"""docker/compose.yaml's healthchecks, run against real Airflow components.

PostgreSQL (a fresh database), the scheduler, dag-processor, triggerer and api-server run as
subprocesses with the compose file's health settings; then each service's healthcheck
command runs here as Docker would run it in the container, with only the ports changed to
the free ones the components listen on (the compose file uses 8080 and 8974 inside each
container) and `airflow` taken from this venv. Every probe must pass once its component is up.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow_stack import AIRFLOW_BIN, AirflowStack, free_port, wait_until
from compose_files import variant

AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
COMPOSE_PORTS = {"api-server": "8080", "scheduler": "8974"}


@pytest.fixture
def stack(tmp_path: Path, postgres_database: str, dags_folder: Path) -> Iterator[AirflowStack]:
    scheduler_env = variant("local")["services"]["scheduler"]["environment"]
    health_port = free_port()
    stack = AirflowStack(
        home=tmp_path / "airflow",
        dags_folder=dags_folder,
        database_url=postgres_database,
        extra_env={
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": scheduler_env[
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"
            ],
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(health_port),
            "AIRFLOW__CORE__FERNET_KEY": scheduler_env["AIRFLOW__CORE__FERNET_KEY"],
        },
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def _probe(stack: AirflowStack, service: str) -> list[str]:
    """The service's healthcheck command as this host runs it (`CMD` form, ports mapped)."""
    kind, *command = variant("local")["services"][service]["healthcheck"]["test"]
    assert kind == "CMD", service
    ports = {
        "api-server": str(stack.api_port),
        "scheduler": stack.env["AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT"],
    }
    if service in COMPOSE_PORTS:
        old, new = f"localhost:{COMPOSE_PORTS[service]}/", f"localhost:{ports[service]}/"
        assert old in command[-1], command
        command[-1] = command[-1].replace(old, new)
    if command[0] == "airflow":  # on the image's PATH; here, this venv's
        command[0] = str(AIRFLOW_BIN)
    return command


def test_every_airflow_healthcheck_passes_against_the_running_component(
    stack: AirflowStack,
) -> None:
    for service in AIRFLOW_SERVICES:
        command = _probe(stack, service)
        results: list[subprocess.CompletedProcess[str]] = []

        def passes(command: list[str] = command, results: list[object] = results) -> bool:
            stack.assert_components_alive()
            result = subprocess.run(
                command, env=stack.env, capture_output=True, text=True, timeout=120, check=False
            )
            results.append(result)
            return result.returncode == 0

        try:
            wait_until(passes, timeout=180, what=f"the {service} healthcheck {command}")
        except TimeoutError:
            last = results[-1] if results else None
            raise AssertionError(
                f"{service}: {command} never passed; last output: "
                f"{getattr(last, 'stdout', '')[-2000:]} {getattr(last, 'stderr', '')[-2000:]}"
            ) from None
