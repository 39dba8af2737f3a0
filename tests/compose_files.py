"""Reading docker/: the compose files as a user runs them, without Docker.

`variant(name)` gives the configuration of `compose.yaml` alone ("local") or with
`compose.celery.yaml` ("celery"), merged as `docker compose -f ... -f ...` merges them for
what these files use, with every `${NAME:-default}` at its default.
tests/unit/test_docker_files.py checks the merge against Docker Compose where it is
installed.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
BASE = DOCKER / "compose.yaml"
CELERY = DOCKER / "compose.celery.yaml"
# The gs:// demo dir docs/docker.md tells users to set: in the bucket the emulator creates.
GCS_DEMO_DIR = "gs://airflow-tf-export-demo/demo"
VARIABLE_DEFAULT = re.compile(r"\$\{([A-Z_]+):-([^}]*)\}")
# Lists an override replaces (Compose merges the others, e.g. ports and volumes, by key).
_REPLACED_LISTS = ("command", "test")


def load(path: Path) -> dict[str, Any]:
    """One compose file as YAML gives it (anchors and merge keys resolved)."""
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), path
    return loaded


def with_defaults(value: Any) -> Any:
    """`value` with every `${NAME:-default}` replaced by its default: what a user gets who
    sets none of the variables."""
    if isinstance(value, str):
        return VARIABLE_DEFAULT.sub(lambda match: match.group(2), value)
    if isinstance(value, dict):
        return {key: with_defaults(item) for key, item in value.items()}
    if isinstance(value, list):
        return [with_defaults(item) for item in value]
    return value


def _merge(base: Any, override: Any, where: str) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base[key], value, f"{where}.{key}") if key in base else value
        return merged
    if isinstance(override, list):
        assert where.endswith(_REPLACED_LISTS), f"{where}: list merging is not modelled here"
    return override


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`docker compose -f base -f override` for what these files use: mappings merge key by
    key, other values and commands replace, a service with `extends` starts from the
    service it names (in the base file)."""
    result = copy.deepcopy(base)
    services = result["services"]
    for name, service in override["services"].items():
        service = dict(service)
        extends = service.pop("extends", None)
        if extends:
            assert (DOCKER / extends["file"]).resolve() == BASE, extends
            start = copy.deepcopy(base["services"][extends["service"]])
        else:
            start = services.get(name, {})
        services[name] = _merge(start, service, name)
    for key in ("volumes", "networks"):
        assert key not in override, f"the override's {key} are not modelled here"
    return result


def variant(name: str) -> dict[str, Any]:
    """The configuration a user runs: "local" (compose.yaml) or "celery" (with the override),
    with the variables' defaults."""
    config = load(BASE) if name == "local" else merged(load(BASE), load(CELERY))
    resolved = with_defaults(config)
    assert isinstance(resolved, dict)
    return resolved


def dockerfile_stages() -> dict[str, str]:
    """Each stage of docker/Dockerfile: its name and text."""
    parts = re.split(r"^FROM \S+ AS (\S+)$", (DOCKER / "Dockerfile").read_text(), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def emulator_entrypoint() -> list[str]:
    """The gcs-emulator image's ENTRYPOINT (exec form)."""
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.+)$", dockerfile_stages()["gcs-emulator"], re.M)
    arguments = json.loads(entrypoint)
    assert isinstance(arguments, list)
    return [str(argument) for argument in arguments]
