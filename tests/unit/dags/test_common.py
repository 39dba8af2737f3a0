"""Exporter specs, import strings and model dirs as the DAG templates check them."""

from __future__ import annotations

import pytest

from airflow_tf_export.dags.common import (
    exporter_dir_uri,
    import_callable,
    parse_exporter_specs,
    validate_import_string,
    validate_model_dir,
)
from airflow_tf_export.operators.export import BestExportOperator, LatestExportOperator


def test_specs_map_strategies_to_operators_and_default_the_name() -> None:
    best, latest = parse_exporter_specs(
        [{"strategy": "best", "exports_to_keep": 3}, {"strategy": "latest", "name": "newest"}]
    )
    assert (best.name, best.operator_class, best.task_id) == (
        "best",
        BestExportOperator,
        "export_best",
    )
    assert best.options == {"validate": True, "exports_to_keep": 3}
    assert (latest.name, latest.operator_class) == ("newest", LatestExportOperator)


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([], "non-empty list"),
        ({"strategy": "best"}, "non-empty list"),
        (["best"], "must be a dict"),
        ([{"strategy": "fastest"}], "valid strategies: ['best', 'final', 'latest']"),
        ([{"strategy": "best", "name": "../x"}], "invalid exporter name"),
        ([{"strategy": "best"}, {"strategy": "latest", "name": "best"}], "['best'] appear"),
        ([{"strategy": "best", "model_dir": "/x"}], "sets ['model_dir']"),
    ],
)
def test_bad_specs_are_named(specs: object, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_exporter_specs(specs)
    assert message in str(error.value)


def test_import_strings() -> None:
    assert import_callable("json:dumps", argument="train")([1]) == "[1]"
    for bad in ("json.dumps", "json:", 42, "a b:c"):
        with pytest.raises(ValueError, match=r"'package\.module:attribute'"):
            validate_import_string(bad, argument="train")
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        import_callable("json:nope", argument="evaluate")
    with pytest.raises(ValueError, match="not a callable"):
        import_callable("json:__name__", argument="evaluate")


def test_model_dirs_and_exporter_dirs() -> None:
    assert validate_model_dir("gs://bucket/models/") == "gs://bucket/models/"
    spec, own = parse_exporter_specs(
        [{"strategy": "best"}, {"strategy": "final", "name": "f", "export_dir_base": "/out/f"}]
    )
    assert exporter_dir_uri("gs://bucket/models/", spec) == "gs://bucket/models/export/best"
    assert exporter_dir_uri("/data/m/", spec) == "/data/m/export/best"
    assert exporter_dir_uri("/data/m", own) == "/out/f"
    for bad in ("relative/dir", "s3://b/m", None):
        with pytest.raises(ValueError):
            validate_model_dir(bad)


def test_the_templates_validate_is_each_specs_unless_the_spec_sets_its_own() -> None:
    off, on = parse_exporter_specs(
        [{"strategy": "best"}, {"strategy": "latest", "validate": True}], validate=False
    )
    assert (off.options["validate"], on.options["validate"]) == (False, True)
    with pytest.raises(ValueError, match="validate must be True or False, got 'no'"):
        parse_exporter_specs([{"strategy": "best"}], validate="no")
