"""EvalMetricsSensor without a DB: poke, execute in poke/deferrable mode, execute_complete.

Event files are written with tensorboard's protos (see tests/unit/events/event_builders.py);
TensorFlow-written files, reschedule mode and the deferrable path in a real DAG run are in
tests/integration/sensors.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta
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
from events.event_builders import (
    append_events,
    checkpoint_event,
    frame,
    simple_value_event,
    write_events,
)

from airflow_tf_export.core.eval_wait import parse_eval_wait
from airflow_tf_export.events.eval_search import find_eval_result
from airflow_tf_export.events.event_file import TAIL_SIZE
from airflow_tf_export.sensors.eval_metrics import (
    CURSOR_KEY,
    EvalMetricsReadError,
    EvalMetricsSensor,
)
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
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    assert deferred.value.method_name == "execute_complete"
    # Airflow's own timeout is a backstop a minute after the trigger's deadline.
    airflow_timeout = deferred.value.timeout
    assert isinstance(airflow_timeout, timedelta)
    assert 3600 + 59 < airflow_timeout.total_seconds() <= 3600 + 60
    trigger = deferred.value.trigger
    assert isinstance(trigger, EvalMetricsTrigger)
    kwargs = trigger.serialize()[1]
    # The trigger starts where the sensor's poke stopped reading: after the whole file.
    cursor = kwargs.pop("cursor")
    assert [(f["uri"], f["offset"]) for f in cursor["files"]] == [
        (str(model_dir / EVENT_FILE), (model_dir / EVENT_FILE).stat().st_size)
    ]
    # The trigger keeps the sensor's deadline: the timeout from the sensor's first poke.
    assert before <= kwargs.pop("started_at") <= time.time()
    assert kwargs == {
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
        "timeout": 3600.0,
        "search_hint": None,  # an event file matches: no need to say where others are
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


class _StateStore:
    """Stands in for Airflow's task state store (`context["task_state_store"]`), which needs
    a task runner's supervisor; the DAG run in tests/integration/sensors uses the real one.
    Values go through JSON, as there."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def _poke(sensor: EvalMetricsSensor, context: dict[str, Any]) -> dict[str, Any] | None:
    poked = sensor.poke(context)  # type: ignore[arg-type]
    return poked.xcom_value if poked.is_done else None


def test_poke_mode_reads_only_what_was_appended_since_the_previous_poke(model_dir: Path) -> None:
    sensor = _sensor(model_dir, min_step=300)
    assert _poke(sensor, {}) is None
    reader = sensor._kept_reader
    assert reader is not None
    first = reader.totals.bytes_read
    assert first == (model_dir / EVENT_FILE).stat().st_size
    assert _poke(sensor, {}) is None
    assert reader.totals.bytes_read == first  # nothing new: nothing read
    appended = append_events(model_dir / EVENT_FILE, [simple_value_event(250, {"loss": 0.5})])
    assert _poke(sensor, {}) is None
    assert reader.totals.bytes_read == first + appended + TAIL_SIZE
    assert reader.held_writes == 0  # step 250 is below min_step: not kept


def test_reschedule_mode_resumes_from_the_cursor_in_the_task_state_store(model_dir: Path) -> None:
    store = _StateStore()
    context = {"task_state_store": store}
    first = _sensor(model_dir, min_step=300, mode="reschedule")
    assert _poke(first, context) is None
    assert CURSOR_KEY in store.values
    appended = append_events(model_dir / EVENT_FILE, [simple_value_event(300, {"loss": 0.5})])
    second = _sensor(model_dir, min_step=300, mode="reschedule")  # a new process per poke
    found = _poke(second, context)
    assert found is not None and found["step"] == 300
    assert second._kept_reader is not None
    assert second._kept_reader.totals.bytes_read == appended + TAIL_SIZE
    assert store.values == {}  # done waiting: the cursor is deleted


def test_poke_mode_keeps_no_cursor(model_dir: Path) -> None:
    store = _StateStore()
    assert _poke(_sensor(model_dir, min_step=300), {"task_state_store": store}) is None
    assert store.values == {}


class _BrokenStore(_StateStore):
    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("state store down")

    def set(self, key: str, value: Any) -> None:
        raise RuntimeError("state store down")


def test_a_failing_state_store_only_costs_a_full_read(model_dir: Path) -> None:
    sensor = _sensor(model_dir, min_step=200, mode="reschedule")
    found = _poke(sensor, {"task_state_store": _BrokenStore()})
    assert found is not None and found["step"] == 200
    assert (
        _poke(
            _sensor(model_dir, min_step=300, mode="reschedule"),
            {"task_state_store": _BrokenStore()},
        )
        is None
    )


def _trigger_check(trigger: EvalMetricsTrigger, reader: Any) -> dict[str, Any] | None:
    """One check of the trigger's loop: what `run` does between its sleeps."""
    wait = parse_eval_wait(
        checkpoint_path=trigger.checkpoint_path,
        min_step=trigger.min_step,
        required_metrics=trigger.required_metrics,
    )
    found = find_eval_result(reader, wait, trigger.model_dir)
    return None if found is None else found.to_dict()


_WAITS: list[dict[str, Any]] = [
    {"min_step": 300},
    {"min_step": 300, "required_metrics": ["auc"]},
    {"checkpoint_path": "model.ckpt-300"},
]


@pytest.mark.parametrize("wait", _WAITS)
def test_every_mode_finds_the_same_results_as_the_files_change(
    model_dir: Path, wait: dict[str, Any]
) -> None:
    """Poke (one sensor), reschedule (a new sensor per poke, a cursor in the state store)
    and deferrable (a trigger starting from the first poke's cursor) agree with a fresh full
    read at every step of a history with appends, a half-written record, a second file, a
    rewrite of an old step, a replaced file and a truncated one."""
    path, other = model_dir / EVENT_FILE, model_dir / "eval/events.out.tfevents.1700000500.host"
    half = frame(simple_value_event(300, {"loss": 0.125}, wall_time=30.0))
    changes = [
        lambda: append_events(path, [simple_value_event(260, {"loss": 0.2}, wall_time=26.0)]),
        lambda: path.open("ab").write(half[:30]),
        lambda: path.open("ab").write(half[30:]),
        lambda: write_events(other, [simple_value_event(300, {"auc": 0.75}, wall_time=31.0)]),
        lambda: append_events(other, [checkpoint_event(300, "/m/model.ckpt-300", wall_time=32)]),
        lambda: append_events(path, [simple_value_event(100, {"auc": 0.0}, wall_time=40.0)]),
        lambda: write_events(path, [simple_value_event(s, {"loss": 0.5}) for s in (310, 320)]),
        lambda: write_events(other, []),
        lambda: append_events(other, [simple_value_event(330, {"loss": 0.1, "auc": 0.9})]),
    ]
    poke_mode = _sensor(model_dir, **wait)
    store, context = _StateStore(), {}
    context["task_state_store"] = store
    deferrable = _sensor(model_dir, deferrable=True, **wait)
    with pytest.raises(TaskDeferred) as deferred:
        deferrable.poke({})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, EvalMetricsTrigger)
    trigger_reader = trigger._open_reader()
    for change in changes:
        change()
        fresh = _poke(_sensor(model_dir, **wait), {})
        outcomes = {
            "poke": _poke(poke_mode, {}),
            "reschedule": _poke(_sensor(model_dir, mode="reschedule", **wait), context),
            "deferrable": _trigger_check(trigger, trigger_reader),
        }
        assert outcomes == {mode: fresh for mode in outcomes}, change
