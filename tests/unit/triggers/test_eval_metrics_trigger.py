"""EvalMetricsTrigger: serialization, incremental waiting, error events, a free event loop."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import structlog
from airflow.triggers.base import TriggerEvent
from events.event_builders import append_events, simple_value_event, write_events

from airflow_tf_export.events import eval_look, eval_search
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.event_file import TAIL_SIZE
from airflow_tf_export.hooks.storage import StorageHook
from airflow_tf_export.storage.base import StorageError
from airflow_tf_export.storage.local import LocalStorage
from airflow_tf_export.triggers.eval_metrics import EvalMetricsTrigger, next_interval

EVENT_FILE = "eval/events.out.tfevents.1700000000.host"


def _trigger(model_dir: Path, **kwargs: Any) -> EvalMetricsTrigger:
    kwargs.setdefault("poke_interval", 0.01)
    return EvalMetricsTrigger(model_dir=str(model_dir), **kwargs)


async def _first_event(trigger: EvalMetricsTrigger, timeout: float = 20) -> TriggerEvent:
    return await asyncio.wait_for(anext(trigger.run()), timeout)  # type: ignore[arg-type]


def test_serialize_round_trips_exactly(tmp_path: Path) -> None:
    trigger = _trigger(
        tmp_path,
        event_file_pattern="eval_holdout/*.tfevents.*",
        newer_than_exporter="best",
        required_metrics=["auc", "loss"],
        gcp_conn_id="my_gcp",
        poke_interval=30.0,
        exponential_backoff=True,
        max_wait=600.0,
        keep_waiting_on_read_error=True,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_tf_export.triggers.eval_metrics.EvalMetricsTrigger"
    assert kwargs["required_metrics"] == ["auc", "loss"]
    assert EvalMetricsTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert set(kwargs) == set(EvalMetricsTrigger.__init__.__kwdefaults__ or {}) | {"model_dir"}


def test_next_interval() -> None:
    assert [next_interval(5, n, exponential_backoff=False, max_wait=None) for n in (1, 9)] == [5, 5]
    assert [next_interval(5, n, exponential_backoff=True, max_wait=None) for n in (1, 2, 3)] == [
        5,
        10,
        20,
    ]
    assert next_interval(5, 10, exponential_backoff=True, max_wait=60) == 60
    assert next_interval(5, 10_000, exponential_backoff=True, max_wait=60) == 60


@pytest.mark.asyncio
async def test_fires_with_the_result_once_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / EVENT_FILE
    size = write_events(path, [simple_value_event(s, {"loss": 1.0 / s}) for s in range(1, 200)])
    bytes_read: list[int] = []

    def counting_find(reader: EvalDirReader, *args: Any) -> Any:
        found = eval_search.find_eval_result(reader, *args)
        bytes_read.append(reader.totals.bytes_read)
        return found

    monkeypatch.setattr(eval_look, "find_eval_result", counting_find)
    waiting = asyncio.create_task(_first_event(_trigger(tmp_path, min_step=500)))
    while len(bytes_read) < 3:
        await asyncio.sleep(0.01)
    assert not waiting.done()
    appended = append_events(path, [simple_value_event(500, {"loss": 0.002})])
    event = await waiting
    assert event.payload["status"] == "success"
    assert event.payload["result"]["step"] == 500
    # The trigger kept its offsets: after the first full read only the new record was read
    # (with the few bytes before it that show the file is still the one read before).
    assert bytes_read[0] == size
    assert bytes_read[-1] == size + appended + TAIL_SIZE


@pytest.mark.asyncio
async def test_bad_configuration_is_an_error_event(tmp_path: Path) -> None:
    for kwargs, message in [
        ({"model_dir": "s3://bucket/model"}, "unsupported URI scheme 's3'"),
        ({"model_dir": "gs://bucket/m", "gcp_conn_id": "no_such_conn"}, "'no_such_conn'"),
        ({"model_dir": str(tmp_path), "event_file_pattern": "../x/*"}, "event_file_pattern"),
        ({"model_dir": "gs://bkt/m#2"}, "'gs://bkt/m#2' contains '#'"),
        (
            {
                "model_dir": str(tmp_path),
                "min_step": None,
                "newer_than_exporter": "best",
                "export_dir_base": "gs://bkt/e/best#2",
                "keep_waiting_on_read_error": True,
            },
            "'gs://bkt/e/best#2' contains '#'",
        ),
    ]:
        kwargs = {"min_step": 1, **kwargs}
        trigger = EvalMetricsTrigger(poke_interval=0.01, **kwargs)  # type: ignore[arg-type]
        event = await _first_event(trigger)
        assert event.payload["status"] == "error"
        assert event.payload["kind"] == "configuration"
        assert message in event.payload["message"]


class _FailingReads(LocalStorage):
    """Local storage whose first reads fail, as a flaky network file system would.

    Nothing real fails on demand here (the tests run as root, so permissions do not stop
    reads), hence this fault injection; the GCS emulator tests cover a real remote store.
    """

    def __init__(self, failures: int) -> None:
        self.failures = failures

    def read_bytes(self, uri: str, start: int = 0, end: int | None = None) -> bytes:
        if self.failures:
            self.failures -= 1
            raise StorageError(f"{uri} cannot be accessed: input/output error")
        return super().read_bytes(uri, start, end)


@pytest.mark.asyncio
async def test_read_errors_end_the_wait_unless_told_to_keep_waiting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_events(tmp_path / EVENT_FILE, [simple_value_event(5, {"loss": 0.5})])
    storage = _FailingReads(failures=1)
    monkeypatch.setattr(StorageHook, "storage_for", lambda self, uri: storage)
    event = await _first_event(_trigger(tmp_path, min_step=5))
    assert event.payload["status"] == "error"
    assert event.payload["kind"] == "read"
    assert "input/output error" in event.payload["message"]

    storage.failures = 2
    event = await _first_event(_trigger(tmp_path, min_step=5, keep_waiting_on_read_error=True))
    assert event.payload["status"] == "success"
    assert storage.failures == 0


async def _run_with_slow_callback_detection(
    coroutine: Any, caplog: pytest.LogCaptureFixture
) -> tuple[Any, list[str]]:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="asyncio"):
        result = await asyncio.create_task(coroutine)
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    return result, slow


@pytest.mark.asyncio
async def test_reading_a_large_file_never_blocks_the_event_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Tags of random lengths: no repeating pattern of records, so every record is read on
    # its own (the slowest way, which regular files avoid).
    lengths = random.Random(5)
    events = [
        simple_value_event(s, {"l" * lengths.randint(1, 40): 1.0 / s}) for s in range(1, 30_000)
    ]
    write_events(tmp_path / EVENT_FILE, events)
    start = time.perf_counter()
    event, slow = await _run_with_slow_callback_detection(
        _first_event(_trigger(tmp_path, min_step=29_999, poke_interval=0)), caplog
    )
    assert event.payload["result"]["step"] == 29_999
    assert time.perf_counter() - start > 0.05  # the read took longer than the threshold
    assert slow == []

    async def blocking() -> None:
        time.sleep(0.1)  # what a trigger reading on the loop would do

    _, slow = await _run_with_slow_callback_detection(blocking(), caplog)
    assert slow, "the detection must catch a blocking coroutine"


@pytest.mark.asyncio
async def test_a_trigger_given_the_sensor_s_cursor_does_not_read_the_files_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / EVENT_FILE
    write_events(path, [simple_value_event(s, {"loss": 1.0 / s}) for s in range(1, 200)])
    first = EvalDirReader(LocalStorage(), str(tmp_path), min_step=500)
    first.refresh()
    bytes_read: list[int] = []

    def counting_find(reader: EvalDirReader, *args: Any) -> Any:
        found = eval_search.find_eval_result(reader, *args)
        bytes_read.append(reader.totals.bytes_read)
        return found

    monkeypatch.setattr(eval_look, "find_eval_result", counting_find)
    appended = append_events(path, [simple_value_event(500, {"loss": 0.002})])
    trigger = _trigger(tmp_path, min_step=500, cursor=first.cursor())
    event = await _first_event(EvalMetricsTrigger(**trigger.serialize()[1]))
    assert event.payload["result"]["step"] == 500
    assert bytes_read == [appended + TAIL_SIZE]


def _deadline(seconds: float, **kwargs: Any) -> dict[str, Any]:
    """Trigger arguments for a wait that began now and times out after `seconds`."""
    return {"started_at": time.time(), "timeout": seconds, **kwargs}


@pytest.mark.asyncio
async def test_the_deadline_ends_the_wait_with_what_was_last_seen(tmp_path: Path) -> None:
    write_events(tmp_path / EVENT_FILE, [simple_value_event(5, {"loss": 0.5})])
    started = time.monotonic()
    trigger = _trigger(tmp_path, min_step=5, required_metrics=["auc"], poke_interval=60)
    trigger = EvalMetricsTrigger(**{**trigger.serialize()[1], **_deadline(0.5)})
    event = await _first_event(trigger)
    assert time.monotonic() - started >= 0.5  # not before the deadline, though it polls hourly
    assert event.payload["status"] == "timeout"
    message = event.payload["message"]
    assert message.startswith("Sensor has timed out; run duration of ")
    assert message.endswith(
        f"Last look: 1 event file matches {tmp_path}/eval/*.tfevents.* "
        "(event_file_pattern='eval/*.tfevents.*'): the newest evaluation (step 5) lacks auc; "
        "it has loss; waiting for global step >= 5 (events below step 5 are not read)"
    )


@pytest.mark.asyncio
async def test_the_last_check_falls_on_the_deadline(tmp_path: Path) -> None:
    """Polling hourly, the trigger still checks once at the deadline, and finds what was
    written before it."""
    write_events(tmp_path / EVENT_FILE, [simple_value_event(5, {"loss": 0.5})])
    waiting = asyncio.create_task(
        _first_event(_trigger(tmp_path, min_step=6, poke_interval=3600, **_deadline(1.0)))
    )
    await asyncio.sleep(0.3)
    append_events(tmp_path / EVENT_FILE, [simple_value_event(6, {"loss": 0.25})])
    event = await waiting
    assert event.payload["status"] == "success"
    assert event.payload["result"]["step"] == 6


@pytest.mark.asyncio
async def test_a_deadline_already_passed_ends_at_the_first_check(tmp_path: Path) -> None:
    trigger = _trigger(tmp_path, min_step=1, poke_interval=3600, started_at=0.0, timeout=5.0)
    event = await _first_event(trigger)
    assert event.payload["status"] == "timeout"
    assert "no evaluation recorded yet; waiting for global step >= 1" in event.payload["message"]


@pytest.mark.asyncio
async def test_the_deadline_holds_while_reads_keep_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_events(tmp_path / EVENT_FILE, [simple_value_event(5, {"loss": 0.5})])
    monkeypatch.setattr(StorageHook, "storage_for", lambda self, uri: _FailingReads(10**9))
    trigger = _trigger(tmp_path, min_step=5, keep_waiting_on_read_error=True, **_deadline(0.3))
    event = await _first_event(trigger)
    assert event.payload["status"] == "timeout"
    assert event.payload["message"].endswith("input/output error")
    assert "Last look: reading eval results failed, waiting on: " in event.payload["message"]


@pytest.mark.asyncio
async def test_cancelled_while_sleeping_it_stops_at_once(tmp_path: Path) -> None:
    waiting = asyncio.create_task(_first_event(_trigger(tmp_path, min_step=1, poke_interval=3600)))
    await asyncio.sleep(0.2)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 1)


class _BlockedListing(LocalStorage):
    """Local storage whose listings wait until released, as a hung network read would."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def glob_info(self, pattern: str) -> Any:
        self.entered.set()
        self.release.wait(30)
        return super().glob_info(pattern)


@pytest.mark.asyncio
async def test_cancelled_during_a_read_it_stops_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = _BlockedListing()
    monkeypatch.setattr(StorageHook, "storage_for", lambda self, uri: storage)
    waiting = asyncio.create_task(_first_event(_trigger(tmp_path, min_step=1, poke_interval=0)))
    assert await asyncio.to_thread(storage.entered.wait, 10)
    waiting.cancel()
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiting, 1)  # the read itself is still blocked
        assert not storage.release.is_set()
    finally:
        storage.release.set()


@pytest.mark.asyncio
async def test_a_misspelt_metric_is_a_configuration_error(tmp_path: Path) -> None:
    write_events(tmp_path / EVENT_FILE, [simple_value_event(5, {"loss": 0.5, "auc": 0.75})])
    event = await _first_event(_trigger(tmp_path, min_step=5, required_metrics=["AUC"]))
    assert event.payload == {
        "status": "error",
        "kind": "configuration",
        "message": "required_metrics names 'AUC', but the evaluation at step 5 has 'auc': "
        "metric names are case-sensitive, so waiting cannot make them match; write them as "
        "the evaluation does (it has auc, loss)",
    }


@pytest.mark.asyncio
async def test_each_check_logs_what_it_saw_and_warns_of_a_missing_metric(tmp_path: Path) -> None:
    write_events(tmp_path / EVENT_FILE, [simple_value_event(5, {"loss": 0.5, "val_auc": 0.75})])
    trigger = _trigger(
        tmp_path, min_step=5, required_metrics=["auc"], poke_interval=0.05, **_deadline(0.5)
    )
    with structlog.testing.capture_logs() as logs:
        event = await _first_event(trigger)
    assert event.payload["status"] == "timeout"
    checks = [log for log in logs if "event file matches" in log["event"]]
    assert len(checks) >= 2
    assert {log["log_level"] for log in checks} == {"warning"}
    assert all("(did you mean 'val_auc'?)" in log["event"] for log in checks)
