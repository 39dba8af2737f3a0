"""EvalMetricsSensor without a DB: poke, execute in poke/deferrable mode, execute_complete.

Event files are written with tensorboard's protos (see tests/unit/events/event_builders.py);
TensorFlow-written files, reschedule mode and the deferrable path in a real DAG run are in
tests/integration/sensors.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)
from events.event_builders import checkpoint_event, simple_value_event, write_events

from airflow_tf_export.sensors.eval_metrics import EvalMetricsReadError, EvalMetricsSensor
from airflow_tf_export.triggers.eval_metrics import EvalMetricsTrigger

EVENT_FILE = "eval/events.out.tfevents.1700000000.host"
QUICK = {"timeout": 1, "poke_interval": 0}


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    write_events(
        tmp_path / EVENT_FILE,
        [
            simple_value_event(100, {"loss": 0.75, "auc": 0.5}, wall_time=10.0),
            checkpoint_event(100, str(tmp_path / "model.ckpt-100"), wall_time=11.0),
            simple_value_event(200, {"loss": 0.25, "auc": 0.875}, wall_time=20.0),
            checkpoint_event(200, str(tmp_path / "model.ckpt-200"), wall_time=21.0),
        ],
    )
    return tmp_path


def _sensor(model_dir: Path, **kwargs: Any) -> EvalMetricsSensor:
    kwargs.setdefault("poke_interval", 0)
    kwargs.setdefault("timeout", 5)
    return EvalMetricsSensor(task_id="wait_for_eval", model_dir=str(model_dir), **kwargs)


def test_poke_returns_the_result_as_an_xcom_dict(model_dir: Path) -> None:
    poked = _sensor(model_dir, min_step=150).poke({})  # type: ignore[arg-type]
    assert isinstance(poked, PokeReturnValue) and poked.is_done
    assert poked.xcom_value == {
        "step": 200,
        "metrics": {"auc": 0.875, "loss": 0.25},
        "checkpoint_path": str(model_dir / "model.ckpt-200"),
        "wall_time": 21.0,
        "source": str(model_dir / EVENT_FILE),
    }


def test_poke_is_not_done_before_the_result_exists(model_dir: Path) -> None:
    assert not _sensor(model_dir, min_step=300).poke({})  # type: ignore[arg-type]
    assert not _sensor(model_dir, min_step=1, required_metrics=["f1"]).poke({})  # type: ignore[arg-type]


def test_execute_in_poke_mode_returns_the_checkpoints_result(model_dir: Path) -> None:
    sensor = _sensor(model_dir, checkpoint_path=str(model_dir / "model.ckpt-100"))
    assert sensor.execute({})["step"] == 100  # type: ignore[arg-type]


def test_poke_mode_times_out_and_soft_fail_skips(model_dir: Path) -> None:
    with pytest.raises(AirflowSensorTimeout):
        _sensor(model_dir, min_step=300, timeout=0).execute({})  # type: ignore[arg-type]
    with pytest.raises(AirflowSkipException):
        _sensor(model_dir, min_step=300, timeout=0, soft_fail=True).execute({})  # type: ignore[arg-type]


def test_reschedule_mode_reschedules_while_waiting(model_dir: Path) -> None:
    class FirstPokeTaskInstance:
        """Stand-in for the runtime TI: reschedule mode only asks it for the first poke date
        (a real one needs the Execution API; tests/integration/sensors runs it for real)."""

        def get_first_reschedule_date(self, context: object) -> None:
            return None

    sensor = _sensor(model_dir, min_step=300, mode="reschedule", poke_interval=30)
    with pytest.raises(AirflowRescheduleException):
        sensor.execute({"ti": FirstPokeTaskInstance()})  # type: ignore[arg-type]
    found = _sensor(model_dir, min_step=100, mode="reschedule")
    assert found.execute({"ti": FirstPokeTaskInstance()})["step"] == 200  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("thresholds", "missed"),
    [
        ({"auc": {"min": 0.9}}, "auc=0.875 is not >= 0.9"),
        ({"loss": {"max": 0.2}}, "loss=0.25 is not <= 0.2"),
    ],
)
def test_a_threshold_miss_fails_without_retry_or_skips(
    model_dir: Path, thresholds: dict[str, Any], missed: str
) -> None:
    with pytest.raises(AirflowFailException, match=missed):
        _sensor(model_dir, min_step=200, thresholds=thresholds).execute({})  # type: ignore[arg-type]
    with pytest.raises(AirflowSkipException, match=missed):
        _sensor(model_dir, min_step=200, thresholds=thresholds, on_threshold_miss="skip").execute(
            {}
        )  # type: ignore[arg-type]
    with pytest.raises(AirflowSkipException):
        _sensor(model_dir, min_step=200, thresholds=thresholds, soft_fail=True).execute({})  # type: ignore[arg-type]


def test_thresholds_met_and_given_as_json_text(model_dir: Path) -> None:
    sensor = _sensor(
        model_dir, min_step=200, thresholds='{"auc": {"min": 0.8}, "loss": {"max": 0.5}}'
    )
    assert sensor.execute({})["metrics"]["auc"] == 0.875  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one target"),
        ({"min_step": 1, "newer_than_exporter": "best"}, "exactly one target"),
        ({"min_step": "soon"}, "min_step must be a non-negative integer, got 'soon'"),
        ({"min_step": 1, "thresholds": {"auc": {"above": 1}}}, "'min' and/or 'max'"),
        ({"min_step": 1, "thresholds": "{not json"}, "thresholds must be a mapping"),
        ({"min_step": 1, "required_metrics": "auc"}, "required_metrics must be a list"),
        ({"min_step": 1, "event_file_pattern": "/abs/*"}, "'/abs/*' is not relative"),
        ({"min_step": 1, "model_dir": "relative/dir"}, "relative local path 'relative/dir'"),
        ({"min_step": 1, "model_dir": "s3://b/m"}, "unsupported URI scheme 's3'"),
        # A short timeout: were the URI cut short, the sensor would wait on another dir.
        ({**QUICK, "min_step": 1, "model_dir": "gs://bkt/m#2"}, "'gs://bkt/m#2' contains '#'"),
        (
            {**QUICK, "min_step": 1, "model_dir": "file:///m/run#A"},
            "plain absolute path '/m/run#A'",
        ),
        (
            {**QUICK, "newer_than_exporter": "best", "export_dir_base": "gs://bkt/e/best?x=1"},
            "'gs://bkt/e/best?x=1' contains '?'",
        ),
        (
            {"min_step": 1, "model_dir": "gs://bucket/m", "gcp_conn_id": "no_such_conn"},
            "'no_such_conn' is not defined",
        ),
    ],
)
@pytest.mark.parametrize("deferrable", [False, True])
def test_bad_input_fails_without_retry_even_with_soft_fail(
    model_dir: Path, kwargs: dict[str, Any], message: str, deferrable: bool
) -> None:
    kwargs.setdefault("model_dir", str(model_dir))
    sensor = EvalMetricsSensor(
        task_id="wait_for_eval", soft_fail=True, deferrable=deferrable, **kwargs
    )
    with pytest.raises(AirflowFailException) as error:
        sensor.execute({})  # type: ignore[arg-type]
    assert message in str(error.value)


def test_on_threshold_miss_is_checked_when_the_dag_is_parsed(model_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"on_threshold_miss must be one of .* got 'warn'"):
        _sensor(model_dir, min_step=1, on_threshold_miss="warn")


def test_deferrable_defers_to_the_trigger_with_every_waiting_argument(model_dir: Path) -> None:
    sensor = _sensor(
        model_dir,
        min_step=300,
        required_metrics=["loss"],
        thresholds={"auc": {"min": 0.5}},
        deferrable=True,
        poke_interval=7,
        timeout=3600,
        exponential_backoff=True,
        max_wait=120,
        silent_fail=True,
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is not None and deferred.value.timeout.total_seconds() == 3600
    trigger = deferred.value.trigger
    assert isinstance(trigger, EvalMetricsTrigger)
    assert trigger.serialize()[1] == {
        "model_dir": str(model_dir),
        "event_file_pattern": "eval/*.tfevents.*",
        "checkpoint_path": None,
        "min_step": 300,
        "newer_than_exporter": None,
        "export_dir_base": None,
        "required_metrics": ["auc", "loss"],
        "gcp_conn_id": "google_cloud_default",
        "poke_interval": 7.0,
        "exponential_backoff": True,
        "max_wait": 120.0,
        "keep_waiting_on_read_error": True,
    }


def test_deferrable_returns_at_once_when_the_result_exists(model_dir: Path) -> None:
    sensor = _sensor(model_dir, min_step=100, deferrable=True)
    assert sensor.execute({})["step"] == 200  # type: ignore[arg-type]


def test_deferrable_and_poke_paths_agree_on_the_same_data(model_dir: Path) -> None:
    kwargs = {"min_step": 150, "thresholds": {"auc": {"min": 0.8}}}
    poked = _sensor(model_dir, **kwargs).execute({})  # type: ignore[arg-type]
    sensor = _sensor(model_dir, deferrable=True, **kwargs)
    trigger = sensor._trigger(sensor._wait())
    event = asyncio.run(anext(trigger.run()))  # type: ignore[arg-type]
    assert sensor.execute_complete({}, event.payload) == poked  # type: ignore[arg-type]


def test_execute_complete_judges_thresholds_like_poke(model_dir: Path) -> None:
    event = {"status": "success", "result": {"step": 5, "metrics": {"auc": "NaN"}}}
    sensor = _sensor(model_dir, min_step=1, thresholds={"auc": {"min": 0.5}})
    with pytest.raises(
        AirflowFailException, match=re.escape("auc=nan is not a finite number (needs >= 0.5)")
    ):
        sensor.execute_complete({}, event)  # type: ignore[arg-type]
    skipping = _sensor(model_dir, min_step=1, thresholds={"auc": {"min": 0.5}}, soft_fail=True)
    with pytest.raises(AirflowSkipException):  # soft_fail applies as in poke mode
        skipping.resume_execution("execute_complete", {"event": event}, {})  # type: ignore[arg-type]


def test_trigger_errors_map_to_the_poke_mode_outcomes(model_dir: Path) -> None:
    sensor = _sensor(model_dir, min_step=1)
    configuration = {"status": "error", "kind": "configuration", "message": "no bucket b"}
    read = {"status": "error", "kind": "read", "message": "connection reset"}
    with pytest.raises(AirflowFailException, match="no bucket b"):
        sensor.execute_complete({}, configuration)  # type: ignore[arg-type]
    with pytest.raises(EvalMetricsReadError, match="connection reset"):
        sensor.execute_complete({}, read)  # type: ignore[arg-type]
    # A read error is not an AirflowException, so soft_fail does not hide it (as in poke mode).
    with pytest.raises(EvalMetricsReadError):
        _sensor(model_dir, min_step=1, soft_fail=True).resume_execution(
            "execute_complete",
            {"event": read},
            {},  # type: ignore[arg-type]
        )
    with pytest.raises(AirflowSkipException):
        _sensor(model_dir, min_step=1, never_fail=True).execute_complete({}, read)  # type: ignore[arg-type]


def test_a_trigger_timeout_is_a_sensor_timeout_or_a_skip(model_dir: Path) -> None:
    timed_out = {"error": "Trigger timeout"}
    with pytest.raises(AirflowSensorTimeout):
        _sensor(model_dir, min_step=1).resume_execution("__fail__", timed_out, {})  # type: ignore[arg-type]
    with pytest.raises(AirflowSkipException):
        _sensor(model_dir, min_step=1, soft_fail=True).resume_execution(
            "__fail__",
            timed_out,
            {},  # type: ignore[arg-type]
        )


def test_template_fields_render(model_dir: Path) -> None:
    sensor = EvalMetricsSensor(
        task_id="wait_for_eval",
        model_dir="{{ params.model_dir }}",
        min_step="{{ params.step }}",
        required_metrics=["{{ params.metric }}"],
        thresholds={"auc": {"min": "{{ params.floor }}"}},  # keys are not templated
        poke_interval=0,
    )
    params = {"model_dir": str(model_dir), "step": "150", "metric": "auc", "floor": "0.8"}
    sensor.render_template_fields({"params": params})  # type: ignore[arg-type]
    assert (sensor.model_dir, sensor.min_step) == (str(model_dir), "150")
    assert sensor.thresholds == {"auc": {"min": "0.8"}}
    assert sensor.required_metrics == ["auc"]
    assert sensor.poke({})  # type: ignore[arg-type]
