"""Template inputs are checked when the DAG is built: a bad one is a ValueError naming it,
never a task that fails later; the sensor waits for every metric a comparison reads."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable
from events.event_builders import checkpoint_event, simple_value_event, write_events

from airflow_tf_export.dags import backfill
from airflow_tf_export.dags.backfill import backfill_dag, evaluate_checkpoint
from airflow_tf_export.dags.common import RETENTION_OWNED
from airflow_tf_export.dags.retraining import retraining_dag

AUC = {"metric": "auc", "higher_is_better": True}
COMMON: dict[str, Any] = {
    "model_dir": "/data/model",
    "model_definition": "airflow_tf_export.example.model:definition",
    "exporters": [{"strategy": "best"}],
}


def _retraining(**overrides: Any) -> Any:
    arguments = {
        "dag_id": "retrain",
        "train": "airflow_tf_export.example.train:train",
        "evaluate": "airflow_tf_export.example.evaluate:evaluate",
        **COMMON,
        **overrides,
    }
    return retraining_dag(**arguments)


def _backfill(**overrides: Any) -> Any:
    arguments = {
        "dag_id": "bf",
        "start_date": pendulum.datetime(2024, 1, 1, tz="UTC"),
        "evaluate": "airflow_tf_export.example.evaluate:evaluate",
        **COMMON,
        **overrides,
    }
    return backfill_dag(**arguments)


def _sensor_metrics(dag: Any) -> list[str]:
    sensor = dag.get_task("wait_for_eval")
    return list(getattr(sensor, "partial_kwargs", {}).get("required_metrics", None) or [])


BAD_FOR_BOTH: list[tuple[str, object, str]] = [
    ("required_metrics", "loss", "must be a list of metric names"),
    ("required_metrics", ["loss", 3], "must hold non-empty strings, got [3]"),
    ("required_metrics", ["loss", ""], "must hold non-empty strings, got ['']"),
    ("event_file_pattern", "/abs/eval/*", "is not relative"),
    ("event_file_pattern", "eval/../x/*", "'..' segment"),
    ("eval_timeout", "600", "positive number of seconds or a timedelta"),
    ("eval_timeout", 0, "positive number of seconds or a timedelta"),
    ("eval_timeout", timedelta(seconds=-1), "positive number of seconds or a timedelta"),
    ("eval_timeout", True, "positive number of seconds or a timedelta"),
    ("deferrable", "yes", "must be True or False"),
    ("evaluate_kwargs", "x", "evaluate_kwargs must be a dict"),
    ("evaluate_kwargs", {"checkpoint_path": "/c"}, "sets ['checkpoint_path']"),
    *(
        ("retention", {"keep": {"newest": 2}, key: "x"}, f"sets [{key!r}]")
        for key in RETENTION_OWNED
    ),
    ("retention", ["keep"], "retention must be a dict"),
    ("model_dir", "gs://bkt/models/run#2", "contains '#', which starts a URI fragment"),
    ("model_dir", "file:///data/run?x=1", "contains '?', which starts a URI query"),
    ("sensor_retries", -1, "sensor_retries must be an integer >= 0, got -1"),
    ("sensor_retries", 1.5, "sensor_retries must be an integer >= 0, got 1.5"),
    ("sensor_retries", True, "sensor_retries must be an integer >= 0, got True"),
    ("sensor_retries", "2", "sensor_retries must be an integer >= 0, got '2'"),
    ("poke_interval", -1, "poke_interval must be a positive number of seconds, got -1"),
    ("poke_interval", 0, "poke_interval must be a positive number of seconds, got 0"),
    ("poke_interval", math.nan, "poke_interval must be a positive number of seconds, got nan"),
    ("poke_interval", "5", "poke_interval must be a positive number of seconds, got '5'"),
]


@pytest.mark.parametrize(("argument", "value", "message"), BAD_FOR_BOTH)
@pytest.mark.parametrize("build", [_retraining, _backfill], ids=["retraining", "backfill"])
def test_bad_inputs_fail_at_build_naming_the_value(
    build: Any, argument: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError) as error:
        build(**{argument: value})
    assert message in str(error.value)
    if argument != "required_metrics" or isinstance(value, str):
        assert repr(value) in str(error.value) or repr(value)[1:-1] in str(error.value)


@pytest.mark.parametrize(
    ("argument", "value", "message"),
    [
        ("thresholds", {"auc": {"minimum": 0.8}}, "must be a mapping with 'min' and/or 'max'"),
        ("thresholds", {"auc": {"min": "high"}}, "must be a finite number"),
        ("thresholds", ["auc"], "thresholds must be a mapping"),
        ("train_kwargs", {"model_dir": "/x"}, "sets ['model_dir']"),
    ],
)
def test_bad_retraining_inputs(argument: str, value: object, message: str) -> None:
    with pytest.raises(ValueError) as error:
        _retraining(**{argument: value})
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"schedule": None}, "got None"),
        ({"schedule": "@once"}, "got '@once'"),
        ({"schedule": "@dailyy"}, "got '@dailyy'"),
        ({"schedule": "0 0 * *"}, "got '0 0 * *'"),
        ({"schedule": timedelta(0)}, "a positive timedelta, got datetime.timedelta(0)"),
        ({"schedule": 3600}, "got 3600"),
        ({"timezone": "Mars/Olympus"}, "IANA time zone name such as 'UTC' or 'Europe/Paris', got"),
        ({"timezone": ""}, "IANA time zone name"),
        ({"timezone": 5}, "got 5"),
        ({"catchup": True}, "sets ['catchup'], which the DAG template sets itself"),
        ({"params": {"x": 1}}, "sets ['params']"),
        ({"max_active_tis_per_dag": 0}, "max_active_tis_per_dag must be a positive integer, got 0"),
    ],
)
def test_bad_backfill_inputs(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        _backfill(**overrides)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("schedule", "timezone", "timetable"),
    [
        ("@daily", "UTC", CronDataIntervalTimetable),
        ("0 */6 * * *", "Europe/Paris", CronDataIntervalTimetable),
        ("@annually", pendulum.timezone("Asia/Tokyo"), CronDataIntervalTimetable),
        (timedelta(hours=6), "UTC", DeltaDataIntervalTimetable),
    ],
)
def test_valid_backfill_schedules(schedule: object, timezone: object, timetable: type) -> None:
    assert isinstance(_backfill(schedule=schedule, timezone=timezone).timetable, timetable)


def test_eval_timeout_takes_seconds_or_a_timedelta() -> None:
    assert _retraining(eval_timeout=600).get_task("wait_for_eval").timeout == 600
    assert _retraining(eval_timeout=timedelta(minutes=2)).get_task("wait_for_eval").timeout == 120
    sensor = _backfill(eval_timeout=90.5).get_task("wait_for_eval")
    assert sensor.partial_kwargs["timeout"] == 90.5


def test_templated_thresholds_are_left_to_the_sensor() -> None:
    thresholds = {"auc": {"min": "{{ params.min_auc }}"}}
    assert _retraining(thresholds=thresholds).get_task("wait_for_eval").thresholds == thresholds


def test_sensor_requires_every_compared_metric() -> None:
    def custom(best_eval_result: Any, current_eval_result: Any) -> bool:
        return True

    exporters = [
        {"strategy": "best", "comparison": AUC},
        {"strategy": "best", "name": "by_loss"},
        {"strategy": "best", "name": "custom", "compare_fn": custom},
        {"strategy": "latest"},
    ]
    dag = _retraining(required_metrics=["accuracy", "auc"], exporters=exporters)
    assert dag.get_task("wait_for_eval").required_metrics == ["accuracy", "auc", "loss"]
    only_auc = _retraining(exporters=[{"strategy": "best", "comparison": AUC}])
    assert only_auc.get_task("wait_for_eval").required_metrics == ["loss", "auc"]
    no_best = _retraining(required_metrics=[], exporters=[{"strategy": "latest"}])
    assert no_best.get_task("wait_for_eval").required_metrics == []

    dag = _backfill(
        required_metrics=["accuracy"], exporters=[{"strategy": "best", "comparison": AUC}]
    )
    assert _sensor_metrics(dag) == ["accuracy", "auc"]
    evaluate = dag.get_task("evaluate").partial_kwargs["op_kwargs"]
    assert evaluate["required_metrics"] == ["accuracy", "auc"]


def test_a_half_written_eval_is_not_already_evaluated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TF2 writes each scalar as its own event: with only `loss` flushed, a checkpoint whose
    best exporter compares `auc` is evaluated (again) rather than taken as done."""
    checkpoint = str(tmp_path / "ckpt-5")
    events = tmp_path / "eval" / "events.out.tfevents.1.host"
    write_events(events, [checkpoint_event(5, checkpoint), simple_value_event(5, {"loss": 0.4})])
    calls: list[str] = []

    def evaluate(*, model_dir: str, checkpoint_path: str) -> dict[str, Any]:
        calls.append(checkpoint_path)
        return {"step": 5}

    monkeypatch.setattr(backfill, "import_callable", lambda reference, argument: evaluate)
    dag = _backfill(model_dir=str(tmp_path), exporters=[{"strategy": "best", "comparison": AUC}])
    arguments = dag.get_task("evaluate").partial_kwargs["op_kwargs"]
    assert evaluate_checkpoint(checkpoint, **arguments)["evaluated"] is True
    assert calls == [checkpoint]

    write_events(
        events,
        [checkpoint_event(5, checkpoint), simple_value_event(5, {"loss": 0.4, "auc": 0.9})],
    )
    outcome = evaluate_checkpoint(checkpoint, **arguments)
    assert outcome["evaluated"] is False
    assert sorted(outcome["eval_result"]["metrics"]) == ["auc", "loss"]
    assert calls == [checkpoint]


CHECK_DEFERRABLE = """
import sys
from airflow_tf_export.dags.retraining import retraining_dag
dag = retraining_dag(
    dag_id="r",
    model_dir="/data/model",
    model_definition="airflow_tf_export.example.model:definition",
    train="airflow_tf_export.example.train:train",
    evaluate=None,
    exporters=[{"strategy": "best"}],
)
print(dag.get_task("wait_for_eval").deferrable, "tensorflow" in sys.modules)
"""


@pytest.mark.parametrize("default_deferrable", ["True", "False"])
def test_retraining_follows_operators_default_deferrable(default_deferrable: str) -> None:
    environment = {**os.environ, "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": default_deferrable}
    completed = subprocess.run(
        [sys.executable, "-c", CHECK_DEFERRABLE],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.split()[-2:] == [default_deferrable, "False"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"strategy": "latest", "retries": -1}, "retries of exporter 'latest' must be an integer"),
        (
            {"strategy": "best", "retries": "3"},
            "retries of exporter 'best' must be an integer >= 0",
        ),
        ({"strategy": "final", "max_steps": 9, "retries": True}, "got True"),
        ({"strategy": "best", "name": "best#2"}, "invalid exporter name 'best#2'"),
        (
            {"strategy": "best", "export_dir_base": "gs://bkt/export/best#2"},
            "'gs://bkt/export/best#2' contains '#'",
        ),
        ({"strategy": "latest", "exports_to_keep": -1}, "Got -1"),
        ({"strategy": "final", "max_steps": 0}, "max_steps must be a positive integer, got 0"),
    ],
)
@pytest.mark.parametrize("build", [_retraining, _backfill], ids=["retraining", "backfill"])
def test_bad_exporter_specs_fail_at_build_naming_the_value(
    build: Any, spec: dict[str, Any], message: str
) -> None:
    """Checked while parsing in both templates (a backfill's export tasks are mapped, and
    `partial()` runs none of the operator's checks)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        build(exporters=[spec])


def test_a_backfill_exporter_spec_cannot_set_what_the_template_sets() -> None:
    with pytest.raises(ValueError, match=r"sets \['max_active_tis_per_dag'\]"):
        _backfill(exporters=[{"strategy": "latest", "max_active_tis_per_dag": 4}])


def test_a_templated_export_dir_base_is_left_to_run_time() -> None:
    spec = {"strategy": "best", "export_dir_base": "{{ params.export_dir }}"}
    assert _retraining(exporters=[spec]).get_task("export_best")
