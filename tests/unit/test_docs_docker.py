"""docs/docker.md stays true to docker/: every command it gives names files, services and
variables the compose files have and parses with the real CLIs, its secrets commands make
a valid Fernet key, and its tables list exactly the services and volumes of the files."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from compose_files import BASE, CELERY, GCS_DEMO_DIR, REPO, VARIABLE_DEFAULT, variant
from cryptography.fernet import Fernet

PAGE = (REPO / "docs" / "docker.md").read_text()
VARIANT_FILES = {(BASE,): "local", (BASE, CELERY): "celery"}


def console_lines() -> list[str]:
    blocks = re.findall(r"```console\n(.*?)```", PAGE, re.S)
    return [line for block in blocks for line in block.strip().splitlines()]


def compose_lines() -> list[str]:
    return [line for line in console_lines() if line.startswith("docker compose")]


def _files(words: list[str]) -> tuple[Path, ...]:
    """The compose files a `docker compose` command line names (the COMPOSE_FILE the page
    exports when it names none)."""
    named = [words[i + 1] for i, word in enumerate(words) if word == "-f"]
    if not named:
        (exported,) = [line for line in console_lines() if line.startswith("export COMPOSE")]
        named = exported.partition("=")[2].split(":")
    return tuple((REPO / name).resolve() for name in named)


def test_the_page_runs_both_variants() -> None:
    variants = {VARIANT_FILES[_files(shlex.split(line))] for line in compose_lines()}
    assert variants == {"local", "celery"}


@pytest.mark.parametrize("line", compose_lines())
def test_each_compose_command_names_what_the_files_have(line: str) -> None:
    from airflow_tf_export.cli.main import parser

    words = shlex.split(line)
    files = _files(words)
    config = variant(VARIANT_FILES[files])
    services = config["services"]
    for index in [i + 1 for i, word in enumerate(words) if word == "--scale"]:
        name, _, count = words[index].partition("=")
        assert name == "airflow-worker" and name in services and int(count) > 0, words[index]
    if "exec" not in words:
        return
    service, program, *arguments = words[words.index("exec") + 1 :]
    assert service in services, service
    if program == "airflow":
        from airflow.cli.cli_parser import get_parser

        get_parser().parse_args(arguments)
        assert arguments[-1] in ("example_retraining", "example_backfill")
    elif program == "airflow-tf-export":
        parsed = parser().parse_args(arguments)
        demo_dir = services[service]["environment"]["AIRFLOW_TF_EXPORT_DEMO_DIR"]
        assert parsed.model_dir in (f"{GCS_DEMO_DIR}/model", f"{demo_dir}/model")
    else:
        from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import (
            SimpleAuthManager,
        )

        generated = Path(SimpleAuthManager.get_generated_password_file()).name
        assert (program, arguments) == ("cat", [f"/opt/airflow/{generated}"])


def test_exported_variables_are_the_ones_the_files_read() -> None:
    read = {
        name for path in (BASE, CELERY) for name, _ in VARIABLE_DEFAULT.findall(path.read_text())
    }
    exported = {
        line.split()[1].partition("=")[0] for line in console_lines() if line.startswith("export ")
    }
    assert exported - {"COMPOSE_FILE"} == read
    assert f"export AIRFLOW_TF_EXPORT_DEMO_DIR={GCS_DEMO_DIR}" in console_lines()
    bucket = GCS_DEMO_DIR.removeprefix("gs://").partition("/")[0]
    assert variant("local")["services"]["gcs"]["command"] == ["--default-bucket", bucket]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_the_secret_commands_make_valid_secrets() -> None:
    commands = dict(
        re.findall(r'^export (AIRFLOW_[A-Z_]+)="\$\((.+)\)"$', "\n".join(console_lines()), re.M)
    )
    assert set(commands) == {"AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET"}
    key = subprocess.run(
        ["bash", "-c", commands["AIRFLOW_FERNET_KEY"]], capture_output=True, text=True, check=True
    ).stdout.strip()
    Fernet(key.encode())  # raises unless a valid Fernet key
    secret = subprocess.run(
        ["bash", "-c", commands["AIRFLOW_JWT_SECRET"]], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", secret)


def _table(first_header: str) -> list[list[str]]:
    start = PAGE.index(f"| {first_header} |")
    lines = PAGE[start:].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def _name(cell: str) -> str:
    return re.match(r"`([a-z-]+)`", cell).group(1)  # type: ignore[union-attr]


def test_the_service_table_lists_every_service_with_its_restart_policy() -> None:
    services: dict[str, Any] = variant("celery")["services"]
    rows = {_name(row[0]): row for row in _table("service")}
    assert set(rows) == set(services)
    for name, row in rows.items():
        assert row[3] == f"`{services[name]['restart']}`", name
        assert ("healthcheck" in services[name]) == (row[2] != "(one-shot)"), name


def test_the_volume_table_lists_every_volume_where_it_is_mounted() -> None:
    config = variant("celery")
    table = {_name(row[0]): row[1].split("`")[1] for row in _table("volume")}
    assert set(table) == set(config["volumes"])
    for volume, target in table.items():
        mounted = [
            service
            for service in config["services"].values()
            for entry in service.get("volumes", [])
            if entry.split(":")[:2] == [volume, target]
        ]
        assert mounted, f"{volume} is mounted at {target} nowhere"


def test_the_connection_shown_is_the_one_the_services_have() -> None:
    shown = re.search(r"`AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT=(\{.+?\})`", PAGE, re.S)
    assert shown
    environment = variant("local")["services"]["scheduler"]["environment"]
    assert json.loads(shown.group(1)) == json.loads(
        environment["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"]
    )
    assert "`STORAGE_EMULATOR_HOST=" + environment["STORAGE_EMULATOR_HOST"] + "`" in PAGE
