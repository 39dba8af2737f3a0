"""The trigger behind the deferrable `EvalMetricsSensor`: waits in the triggerer.

It keeps one incremental `EvalDirReader` for as long as it runs, so each check reads only the
bytes appended since the previous one; it starts from the cursor of the sensor's own first
poke, so the files are not read twice. Every storage call runs in a worker thread
(`asyncio.to_thread`), so the triggerer's event loop never blocks on disk or GCS.
Thresholds are not judged here: the trigger reports the awaited result and the sensor's
`execute_complete` judges it exactly as `poke` does.

It keeps the sensor's deadline itself (`started_at` + `timeout`): its last check is at the
deadline, and then it fires a timeout event naming what it waited for and what it last saw.
Airflow's own trigger timeout only catches a trigger that cannot fire; and `airflow dags
test`, which runs triggers in line, has none. Cancelled (the task cleared or marked, the
triggerer stopping), it stops at once: it only ever awaits a sleep or a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_tf_export.core.eval_wait import EvalWait, parse_eval_wait, timeout_message
from airflow_tf_export.events.eval_dir import DEFAULT_EVENT_FILE_PATTERN, EvalDirReader
from airflow_tf_export.events.eval_look import look
from airflow_tf_export.hooks.storage import StorageHook
from airflow_tf_export.storage import BucketNotFoundError
from airflow_tf_export.storage.uris import exporter_uri

CONFIGURATION_ERRORS: tuple[type[Exception], ...] = (AirflowFailException, BucketNotFoundError)
"""Errors that waiting longer cannot fix: bad URI, unknown connection, missing bucket."""

ERROR_KIND_CONFIGURATION = "configuration"
ERROR_KIND_READ = "read"
STATUS_TIMEOUT = "timeout"


def check_exporter_uri(model_dir: str, wait: EvalWait) -> None:
    """ValueError naming the exporter dir of a `newer_than_exporter` wait when it is not a
    valid URI: checked before waiting, since waiting cannot fix it."""
    if wait.newer_than_exporter is not None:
        exporter_uri(model_dir, wait.newer_than_exporter, wait.export_dir_base)


def next_interval(
    poke_interval: float, attempt: int, *, exponential_backoff: bool, max_wait: float | None
) -> float:
    """Seconds to wait after check number `attempt` (1-based).

    Without backoff it is `poke_interval`; with it, `poke_interval * 2**(attempt - 1)`,
    capped by `max_wait` when given (as the sensor caps its backoff).
    """
    if not exponential_backoff:
        return poke_interval
    interval = poke_interval * 2 ** min(attempt - 1, 62)
    return interval if max_wait is None else min(interval, max_wait)


class EvalMetricsTrigger(BaseTrigger):
    """Fires once: with the awaited eval result, or with an error.

    Event payloads: ``{"status": "success", "result": EvalResult.to_dict()}``,
    ``{"status": "timeout", "message": ...}`` or
    ``{"status": "error", "kind": "configuration" | "read", "message": ...}``.
    The arguments mirror the sensor's; `required_metrics` already includes the
    thresholded metrics. `cursor` is the sensor's reader state (`EvalDirReader.cursor()`),
    to start where its poke stopped. `started_at` (seconds since the epoch) and `timeout`
    (seconds) set the deadline (none when either is None); `search_hint` is what the
    sensor found near the pattern (`core.eval_wait.nearby_hint`), logged while no event
    file matches.
    """

    def __init__(
        self,
        *,
        model_dir: str,
        event_file_pattern: str = DEFAULT_EVENT_FILE_PATTERN,
        checkpoint_path: str | None = None,
        min_step: int | None = None,
        newer_than_exporter: str | None = None,
        export_dir_base: str | None = None,
        required_metrics: Sequence[str] = (),
        gcp_conn_id: str = StorageHook.default_conn_name,
        poke_interval: float = 60.0,
        exponential_backoff: bool = False,
        max_wait: float | None = None,
        keep_waiting_on_read_error: bool = False,
        cursor: dict[str, Any] | None = None,
        started_at: float | None = None,
        timeout: float | None = None,
        search_hint: str | None = None,
    ) -> None:
        super().__init__()
        self.model_dir = model_dir
        self.event_file_pattern = event_file_pattern
        self.checkpoint_path = checkpoint_path
        self.min_step = min_step
        self.newer_than_exporter = newer_than_exporter
        self.export_dir_base = export_dir_base
        self.required_metrics = list(required_metrics)
        self.gcp_conn_id = gcp_conn_id
        self.poke_interval = poke_interval
        self.exponential_backoff = exponential_backoff
        self.max_wait = max_wait
        self.keep_waiting_on_read_error = keep_waiting_on_read_error
        self.cursor = cursor
        self.started_at = started_at
        self.timeout = timeout
        self.search_hint = search_hint

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and exactly the constructor's keyword arguments."""
        return (
            "airflow_tf_export.triggers.eval_metrics.EvalMetricsTrigger",
            {
                "model_dir": self.model_dir,
                "event_file_pattern": self.event_file_pattern,
                "checkpoint_path": self.checkpoint_path,
                "min_step": self.min_step,
                "newer_than_exporter": self.newer_than_exporter,
                "export_dir_base": self.export_dir_base,
                "required_metrics": list(self.required_metrics),
                "gcp_conn_id": self.gcp_conn_id,
                "poke_interval": self.poke_interval,
                "exponential_backoff": self.exponential_backoff,
                "max_wait": self.max_wait,
                "keep_waiting_on_read_error": self.keep_waiting_on_read_error,
                "cursor": self.cursor,
                "started_at": self.started_at,
                "timeout": self.timeout,
                "search_hint": self.search_hint,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Sleep, check, repeat until the result exists or the deadline passed; yield one
        event."""
        try:
            wait = parse_eval_wait(
                checkpoint_path=self.checkpoint_path,
                min_step=self.min_step,
                newer_than_exporter=self.newer_than_exporter,
                export_dir_base=self.export_dir_base,
                required_metrics=self.required_metrics,
            )
            check_exporter_uri(self.model_dir, wait)
            reader = await asyncio.to_thread(self._open_reader)
        except (ValueError, AirflowFailException, BucketNotFoundError) as error:
            yield _error(ERROR_KIND_CONFIGURATION, error)
            return
        attempt = 0
        while True:
            attempt += 1
            await asyncio.sleep(self._pause(attempt))
            event = await self._check(reader, wait)
            if event is not None:
                yield event
                return

    async def _check(self, reader: EvalDirReader, wait: EvalWait) -> TriggerEvent | None:
        """One look (in a worker thread): the event to fire, or None to wait on."""
        try:
            found = await asyncio.to_thread(
                look,
                reader,
                wait,
                self.model_dir,
                self.event_file_pattern,
                self._hook().storage_for,
            )
        except CONFIGURATION_ERRORS as error:
            return _error(ERROR_KIND_CONFIGURATION, error)
        except Exception as error:
            if not self.keep_waiting_on_read_error:
                return _error(ERROR_KIND_READ, error)
            status, level = f"reading eval results failed, waiting on: {error}", logging.WARNING
        else:
            if found.result is not None:
                self.log.info(
                    "found the eval result of step %d for %s",
                    found.result.step,
                    wait.describe_target(),
                )
                return TriggerEvent({"status": "success", "result": found.result.to_dict()})
            if found.mistake is not None:
                return TriggerEvent(
                    {"status": "error", "kind": ERROR_KIND_CONFIGURATION, "message": found.mistake}
                )
            status = found.status(self.search_hint)
            level = logging.INFO if found.missing is None else logging.WARNING
        if self.started_at is not None and self.timeout is not None:
            elapsed = time.time() - self.started_at
            if elapsed >= self.timeout:
                message = timeout_message(elapsed, self.timeout, status)
                return TriggerEvent({"status": STATUS_TIMEOUT, "message": message})
        self.log.log(level, "%s", status)
        return None

    def _pause(self, attempt: int) -> float:
        """Seconds to sleep before check number `attempt`: the poke interval (with its
        backoff), cut short so that the last check falls on the deadline."""
        interval = next_interval(
            self.poke_interval,
            attempt,
            exponential_backoff=self.exponential_backoff,
            max_wait=self.max_wait,
        )
        if self.started_at is None or self.timeout is None:
            return interval
        return max(0.0, min(interval, self.started_at + self.timeout - time.time()))

    def _hook(self) -> StorageHook:
        return StorageHook(gcp_conn_id=self.gcp_conn_id)

    def _open_reader(self) -> EvalDirReader:
        storage = self._hook().storage_for(self.model_dir)
        reader = EvalDirReader(storage, self.model_dir, self.event_file_pattern)
        if self.cursor is not None:
            reader.resume(self.cursor)
        return reader


def _error(kind: str, error: Exception) -> TriggerEvent:
    return TriggerEvent(
        {"status": "error", "kind": kind, "message": f"{type(error).__name__}: {error}"}
    )
