"""The provider metadata lists every Airflow-facing module and matches Airflow's schema."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points
from importlib.resources import files

import jsonschema

from airflow_tf_export.get_provider_info import get_provider_info


def test_entry_point_resolves_to_get_provider_info() -> None:
    (ep,) = [
        e
        for e in entry_points(group="apache_airflow_provider")
        if e.value.startswith("airflow_tf_export")
    ]
    assert ep.load() is get_provider_info


def test_provider_info_matches_airflow_schema() -> None:
    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_listed_modules_import() -> None:
    info = get_provider_info()
    for kind in ("operators", "sensors", "triggers", "hooks"):
        for module in info[kind][0]["python-modules"]:
            importlib.import_module(module)
