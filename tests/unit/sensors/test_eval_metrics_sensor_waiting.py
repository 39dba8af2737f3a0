"""What a waiting EvalMetricsSensor says, and how it gives up: the same in poke, reschedule
and deferrable mode.

Each mode runs as Airflow runs it, without a DB: poke mode through `execute`; reschedule
mode as a new sensor per poke, sharing a task state store and the first poke's date (the
stand-ins below, since the real ones need a task runner's supervisor:
tests/integration/sensors runs them for real); deferrable mode through `execute`, its
trigger rebuilt from `serialize()` and run to its event, then `resume_execution` on a new
sensor, as `airflow dags test` does.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowRescheduleException,
    AirflowSensorTimeout,
    TaskDeferred,
)
from events.event_builders import simple_value_event, write_events

from airflow_tf_export.hooks.storage import StorageHook
from airflow_tf_export.sensors.eval_metrics import SEARCH_HINT_KEY, EvalMetricsSensor
from airflow_tf_export.storage.base import Entry
from airflow_tf_export.storage.local import LocalStorage
from airflow_tf_export.triggers.eval_metrics import EvalMetricsTrigger

MODES = ("poke", "reschedule", "deferrable")
TIMEOUT = 1.0


class _StateStore:
    """Stands in for `context["task_state_store"]`; values go through JSON, as there."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.dumps(value)

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class _RescheduledTaskInstance:
    """Stands in for the runtime TI: reschedule mode asks it when the first poke was."""

    def __init__(self) -> None:
        self.first_poke: datetime | None = None

    def get_first_reschedule_date(self, context: object) -> datetime | None:
        return self.first_poke


def _sensor(model_dir: Path, mode: str, **kwargs: Any) -> EvalMetricsSensor:
    kwargs.setdefault("poke_interval", 0.2)
    kwargs.setdefault("timeout", TIMEOUT)
    return EvalMetricsSensor(
        task_id="wait_for_eval",
        model_dir=str(model_dir),
        mode="reschedule" if mode == "reschedule" else "poke",
        deferrable=mode == "deferrable",
        **kwargs,
    )


def _run(model_dir: Path, mode: str, **kwargs: Any) -> Any:
    """Run the sensor in `mode` to its end: its XCom value, or the exception it ended with."""
    try:
        if mode == "poke":
            return _sensor(model_dir, mode, **kwargs).execute({})  # type: ignore[arg-type]
        if mode == "reschedule":
            return _run_rescheduled(model_dir, **kwargs)
        return _run_deferred(model_dir, **kwargs)
    except Exception as error:
        return error


def _run_rescheduled(model_dir: Path, **kwargs: Any) -> Any:
    ti, store = _RescheduledTaskInstance(), _StateStore()
    first_poke = datetime.now(UTC)
    while True:
        context = {"ti": ti, "task_state_store": store}
        try:
            return _sensor(model_dir, "reschedule", **kwargs).execute(context)  # type: ignore[arg-type]
        except AirflowRescheduleException as rescheduled:
            ti.first_poke = first_poke
            time.sleep(max(0.0, (rescheduled.reschedule_date - datetime.now(UTC)).total_seconds()))


def _run_deferred(model_dir: Path, **kwargs: Any) -> Any:
    try:
        return _sensor(model_dir, "deferrable", **kwargs).execute({})  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        trigger = deferred.trigger
    assert isinstance(trigger, EvalMetricsTrigger)
    classpath, trigger_kwargs = trigger.serialize()
    assert classpath.endswith(".EvalMetricsTrigger")
    event = asyncio.run(_first_event(EvalMetricsTrigger(**json.loads(json.dumps(trigger_kwargs)))))
    resumed = _sensor(model_dir, "deferrable", **kwargs)
    return resumed.resume_execution("execute_complete", {"event": event.payload}, {})  # type: ignore[arg-type]


async def _first_event(trigger: EvalMetricsTrigger) -> Any:
    return await asyncio.wait_for(anext(trigger.run()), 60)  # type: ignore[arg-type]


def _outcome(result: Any) -> tuple[str, str]:
    """The exception type and message, the run duration taken out (it differs by mode)."""
    if not isinstance(result, BaseException):
        return ("result", json.dumps(result, sort_keys=True))
    return (type(result).__name__, re.sub(r"run duration of [\d.]+ seconds", "...", str(result)))


@pytest.fixture
def keras_model_dir(tmp_path: Path) -> Path:
    """Evaluations written where Keras's TensorBoard callback writes them, not in eval/."""
    write_events(
        tmp_path / "validation" / "events.out.tfevents.1700000000.host.v2",
        [simple_value_event(1, {"epoch_loss": 0.5, "epoch_mae": 0.25})],
    )
    write_events(
        tmp_path / "train" / "events.out.tfevents.1700000000.host.v2",
        [simple_value_event(1, {"epoch_loss": 0.5})],
    )
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    return tmp_path


@pytest.fixture
def mae_model_dir(tmp_path: Path) -> Path:
    write_events(
        tmp_path / "eval" / "events.out.tfevents.1700000000.host",
        [simple_value_event(100, {"loss": 0.5, "mae": 0.25})],
    )
    return tmp_path


def test_a_poke_that_finds_no_file_names_the_pattern_and_where_event_files_are(
    keras_model_dir: Path,
) -> None:
    with structlog.testing.capture_logs() as logs:
        assert not _sensor(keras_model_dir, "poke", min_step=1).poke({})  # type: ignore[arg-type]
    (line,) = [log["event"] for log in logs if "event files" in log["event"]]
    assert line == (
        f"0 event files match {keras_model_dir}/eval/*.tfevents.* "
        "(event_file_pattern='eval/*.tfevents.*'): no evaluation recorded yet; waiting for "
        "global step >= 1 (events below step 1 are not read). "
        f"Event files elsewhere in {keras_model_dir}: train/ (1 file), validation/ (1 file); "
        "set event_file_pattern to the one the evaluation writes: "
        "'train/*.tfevents.*' or 'validation/*.tfevents.*'"
    )


def test_a_missing_model_dir_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_model"
    result = _run(missing, "poke", min_step=1, timeout=0)
    assert isinstance(result, AirflowSensorTimeout)
    assert str(result).endswith(f"The model_dir {missing} does not exist")


@pytest.mark.parametrize("outcome", ["fail", "soft_fail", "never_fail"])
def test_a_timeout_is_the_same_in_every_mode(keras_model_dir: Path, outcome: str) -> None:
    kwargs: dict[str, Any] = {"min_step": 1, "required_metrics": ["epoch_mae"]}
    if outcome != "fail":
        kwargs[outcome] = True
    started = time.monotonic()
    outcomes = {mode: _outcome(_run(keras_model_dir, mode, **kwargs)) for mode in MODES}
    assert time.monotonic() - started >= len(MODES) * TIMEOUT  # each waited its timeout
    if outcome == "fail":
        expected = (
            "AirflowSensorTimeout",
            "Sensor has timed out; ... reached the timeout of 1 seconds. Last look: "
            f"0 event files match {keras_model_dir}/eval/*.tfevents.* "
            "(event_file_pattern='eval/*.tfevents.*'): no evaluation recorded yet; waiting for "
            "global step >= 1 (events below step 1 are not read). Event files elsewhere in "
            f"{keras_model_dir}: train/ (1 file), validation/ (1 file); set event_file_pattern "
            "to the one the evaluation writes: 'train/*.tfevents.*' or "
            "'validation/*.tfevents.*'",
        )
    else:
        expected = ("AirflowSkipException", f"Skipping due to {outcome} is set to True.")
    assert outcomes == dict.fromkeys(MODES, expected)
    # Pointed at the directory it names, the same sensor finds the evaluation.
    found = _run(keras_model_dir, "poke", event_file_pattern="validation/*.tfevents.*", **kwargs)
    assert found["metrics"] == {"epoch_loss": 0.5, "epoch_mae": 0.25}


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"required_metrics": ["MAE"]}, "required_metrics"),
        ({"thresholds": {"MAE": {"max": 1.0}}}, "thresholds"),
    ],
)
def test_a_metric_misspelt_in_letter_case_fails_at_once_in_every_mode(
    mae_model_dir: Path, kwargs: dict[str, Any], argument: str
) -> None:
    started = time.monotonic()
    outcomes = {
        mode: _outcome(_run(mae_model_dir, mode, min_step=100, timeout=600, **kwargs))
        for mode in MODES
    }
    assert time.monotonic() - started < 600  # not one waited for its timeout
    message = (
        f"waiting for eval results in {mae_model_dir} failed: {argument} names 'MAE', but the "
        "evaluation at step 100 has 'mae': metric names are case-sensitive, so waiting cannot "
        "make them match; write them as the evaluation does (it has loss, mae)"
    )
    assert outcomes == dict.fromkeys(MODES, ("AirflowFailException", message))
    skipped = {
        mode: _outcome(_run(mae_model_dir, mode, min_step=100, soft_fail=True, **kwargs))
        for mode in MODES
    }
    assert skipped == dict.fromkeys(
        MODES, ("AirflowSkipException", "Skipping due to soft_fail is set to True.")
    )


def test_the_trigger_fails_a_misspelling_with_the_poke_s_message(mae_model_dir: Path) -> None:
    """The evaluation appears after the sensor deferred: the trigger finds the misspelling."""
    late = mae_model_dir / "late"
    late.mkdir()
    sensor = _sensor(late, "deferrable", min_step=100, required_metrics=["MAE"], timeout=600)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, EvalMetricsTrigger)
    (late / "eval").symlink_to(mae_model_dir / "eval")
    event = asyncio.run(_first_event(trigger))
    assert event.payload["kind"] == "configuration"
    with pytest.raises(AirflowFailException) as from_trigger:
        sensor.execute_complete({}, event.payload)  # type: ignore[arg-type]
    poked = _run(late, "poke", min_step=100, required_metrics=["MAE"])
    assert isinstance(poked, AirflowFailException)
    assert str(from_trigger.value) == str(poked)


def test_another_missing_metric_is_waited_for_with_a_warning_in_every_mode(
    mae_model_dir: Path,
) -> None:
    outcomes = {}
    for mode in MODES:
        with structlog.testing.capture_logs() as logs:
            outcomes[mode] = _outcome(
                _run(mae_model_dir, mode, min_step=100, required_metrics=["val_mae"])
            )
        warnings = [log["event"] for log in logs if log["log_level"] == "warning"]
        assert any(
            "lacks val_mae; it has loss, mae (did you mean 'mae'?)" in line for line in warnings
        ), (mode, logs)
    assert outcomes == dict.fromkeys(
        MODES,
        (
            "AirflowSensorTimeout",
            "Sensor has timed out; ... reached the timeout of 1 seconds. Last look: "
            f"1 event file matches {mae_model_dir}/eval/*.tfevents.* "
            "(event_file_pattern='eval/*.tfevents.*'): the newest evaluation (step 100) lacks "
            "val_mae; it has loss, mae (did you mean 'mae'?); waiting for global step >= 100 "
            "(events below step 100 are not read)",
        ),
    )


class _CountingStorage(LocalStorage):
    """Local storage counting its directory listings (the nearby look's only requests)."""

    def __init__(self) -> None:
        self.listed: list[str] = []

    def list_dir(self, uri: str) -> list[Entry]:
        self.listed.append(uri)
        return super().list_dir(uri)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> _CountingStorage:
    storage = _CountingStorage()
    monkeypatch.setattr(StorageHook, "storage_for", lambda self, uri: storage)
    return storage


def test_poke_mode_looks_nearby_once_per_try(
    keras_model_dir: Path, counted: _CountingStorage
) -> None:
    sensor = _sensor(keras_model_dir, "poke", min_step=1)
    for _ in range(3):
        assert not sensor.poke({})  # type: ignore[arg-type]
    assert sorted(counted.listed) == [
        str(keras_model_dir),
        str(keras_model_dir / "train"),
        str(keras_model_dir / "validation"),
    ]


def test_reschedule_mode_keeps_the_nearby_look_in_the_task_state_store(
    keras_model_dir: Path, counted: _CountingStorage
) -> None:
    store = _StateStore()
    context = {"task_state_store": store}
    lines = []
    for _ in range(3):  # a new sensor per poke, as a new process
        with structlog.testing.capture_logs() as logs:
            assert not _sensor(keras_model_dir, "reschedule", min_step=1).poke(context)  # type: ignore[arg-type]
        lines += [log["event"] for log in logs if "event files" in log["event"]]
    assert len(counted.listed) == 3  # model_dir, train/, validation/: once
    assert len(set(lines)) == 1 and "validation/ (1 file)" in lines[0]
    # Found at last: nothing is left in the store.
    assert SEARCH_HINT_KEY in store.values
    found = _sensor(keras_model_dir, "reschedule", min_step=1, event_file_pattern="*/*.tfevents.*")
    assert found.poke(context)  # type: ignore[arg-type]
    assert store.values == {}


def test_the_trigger_is_given_the_nearby_look_and_lists_nothing(
    keras_model_dir: Path, counted: _CountingStorage
) -> None:
    sensor = _sensor(keras_model_dir, "deferrable", min_step=1, timeout=0.5)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})  # type: ignore[arg-type]
    listed = len(counted.listed)
    trigger = deferred.value.trigger
    assert isinstance(trigger, EvalMetricsTrigger)
    assert trigger.search_hint is not None and "validation/ (1 file)" in trigger.search_hint
    with structlog.testing.capture_logs() as logs:
        event = asyncio.run(_first_event(trigger))
    assert event.payload["status"] == "timeout"
    assert trigger.search_hint in event.payload["message"]
    assert len(counted.listed) == listed
    assert all(trigger.search_hint in log["event"] for log in logs if "match" in log["event"])
