"""A URI with a '#' fragment or a '?' query reaches no operator's storage: each one fails
at execute, without retry, naming the URI (no TensorFlow, no DB: it fails before any I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_tf_export.hooks.storage import StorageHook
from airflow_tf_export.operators.compare import CompareOperator
from airflow_tf_export.operators.export import LatestExportOperator
from airflow_tf_export.operators.retention import RetentionOperator

DEFINITION = "airflow_tf_export.example.model:definition"
FRAGMENT = "gs://bkt/models/run#2"
QUERY = "file:///data/models/run?x=1"


def _fails_naming(operator: Any, uri: str) -> str:
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({})
    message = str(raised.value)
    assert f"{uri!r} contains" in message
    return message


@pytest.mark.parametrize("uri", [FRAGMENT, QUERY])
def test_the_hook_refuses_it(uri: str) -> None:
    with pytest.raises(AirflowFailException, match="which starts a URI"):
        StorageHook().storage_for(uri)


@pytest.mark.parametrize("uri", [FRAGMENT, QUERY])
def test_an_export_refuses_it_as_model_dir(uri: str) -> None:
    operator = LatestExportOperator(
        task_id="latest", name="latest", model_definition=DEFINITION, model_dir=uri
    )
    _fails_naming(operator, uri)


def test_an_export_refuses_it_as_export_dir_base(tmp_path: Path) -> None:
    operator = LatestExportOperator(
        task_id="latest",
        name="latest",
        model_definition=DEFINITION,
        model_dir=str(tmp_path),
        export_dir_base=FRAGMENT,
    )
    assert "would name 'gs://bkt/models/run'" in _fails_naming(operator, FRAGMENT)


def test_a_comparison_refuses_it(tmp_path: Path) -> None:
    _fails_naming(CompareOperator(task_id="compare", name="best", model_dir=FRAGMENT), FRAGMENT)
    operator = CompareOperator(
        task_id="compare", name="best", model_dir=str(tmp_path), export_dir_base=QUERY
    )
    _fails_naming(operator, QUERY)


def test_retention_refuses_it_and_deletes_nothing(tmp_path: Path) -> None:
    kept = tmp_path / "export" / "best" / "1700000000"
    kept.mkdir(parents=True)
    (kept / "saved_model.pb").write_bytes(b"graph")
    uri = f"file://{tmp_path}/export/best#1"
    operator = RetentionOperator(task_id="retention", exporter_dirs=[uri], keep={"newest": 1})
    message = _fails_naming(operator, uri)
    assert f"plain absolute path '{tmp_path}/export/best#1'" in message
    assert (kept / "saved_model.pb").read_bytes() == b"graph"
