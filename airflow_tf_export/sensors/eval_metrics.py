"""`EvalMetricsSensor`: wait until the evaluator has written the eval result of a target.

The sensor reads TensorFlow event files itself (no TensorFlow import), in poke, reschedule
and deferrable mode alike, and pushes the result found as a JSON-able dict
(`EvalResult.to_dict()`) to XCom.

Outcomes, identical in every mode:
- Invalid arguments (no or several targets, bad step, bad thresholds, bad pattern, bad URI,
  unknown connection): the task fails without retry, whatever `soft_fail` says; they are
  checked in `execute` before any waiting.
- Result found, thresholds met: success, the result in XCom.
- Threshold missed: `on_threshold_miss="fail"` fails without retry
  (AirflowFailException), `"skip"` skips. As for any sensor failure, `soft_fail=True` or
  `never_fail=True` turns the failure into a skip.
- Missing bucket while waiting: like a threshold miss with "fail" (waiting cannot fix it).
- A required (or thresholded) metric that the newest evaluation has in another letter case
  (`MAE` for `mae`): like a threshold miss with "fail" (waiting cannot fix a misspelling).
  Any other metric the newest evaluation lacks is waited for, with a warning on every poke
  naming the metrics it has and the ones it may mean.
- Storage read errors: the task fails and may retry; `silent_fail=True` logs them and keeps
  waiting; `never_fail=True` skips.
- Nothing found before `timeout` (measured as Airflow measures it: from the first poke; in
  reschedule mode from the first poke Airflow recorded a reschedule for):
  AirflowSensorTimeout naming the files searched and what the last look found, or a skip
  with `soft_fail` or `never_fail`.
  The trigger keeps this deadline itself, so a deferrable sensor ends on time under
  `airflow dags test` too.
Every poke that finds nothing logs the pattern URI searched, the `event_file_pattern`, and,
when no file matches it, where event files are (one listing of `model_dir` and its
subdirectories per try). Damaged or half-written records in event files are skipped and
logged, never an error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.exceptions import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
)

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.eval_wait import (
    EvalWait,
    nearby_hint,
    parse_eval_wait,
    threshold_misses,
    timeout_message,
)
from airflow_tf_export.events.eval_dir import (
    DEFAULT_EVENT_FILE_PATTERN,
    EvalDirReader,
    nearby_event_files,
    validate_event_file_pattern,
)
from airflow_tf_export.events.eval_look import EvalLook, look
from airflow_tf_export.hooks.storage import StorageHook
from airflow_tf_export.storage import BucketNotFoundError, Storage, StorageError
from airflow_tf_export.triggers.eval_metrics import (
    ERROR_KIND_CONFIGURATION,
    STATUS_TIMEOUT,
    EvalMetricsTrigger,
    check_exporter_uri,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

ON_THRESHOLD_MISS = ("fail", "skip")
AIRFLOW_TIMEOUT_MARGIN = timedelta(minutes=1)
"""Airflow's own trigger timeout is set this long after the sensor's deadline, so the
trigger's timeout, which says what it waited for, comes first; Airflow's only ends a
trigger that could not fire."""


class EvalMetricsReadError(RuntimeError):
    """The trigger could not read the eval results (a storage error); retrying may help."""


class EvalMetricsSensor(BaseSensorOperator):
    """Wait for the eval result of a checkpoint, a global step, or a step newer than an export.

    :param model_dir: The model directory, a local absolute path or ``gs://bucket/prefix``
        (templated).
    :param checkpoint_path: Wait for the result of this checkpoint, as recorded in the
        ``checkpoint_path`` summary the evaluator writes (templated). Give exactly one of
        ``checkpoint_path``, ``min_step`` and ``newer_than_exporter``.
    :param min_step: Wait for a result at global step >= this (templated).
    :param newer_than_exporter: Wait for a result at a step above the highest global step
        this exporter's directory holds: its committed versions and its foreign versions (a
        tf.estimator's exports) whose step can be read (templated).
    :param export_dir_base: With ``newer_than_exporter``: that exporter's directory when it
        is not ``<model_dir>/export/<name>``, as the export operator's ``export_dir_base``
        (templated).
    :param required_metrics: Metrics the result must have; a step still missing one is
        waited on (templated).
    :param thresholds: Bounds to judge the result by, e.g.
        ``{"auc": {"min": 0.8}, "loss": {"max": 0.5}}`` (inclusive; NaN never passes). The
        thresholded metrics are required too (templated; a dict or its JSON text).
    :param on_threshold_miss: ``"fail"`` (fail without retry) or ``"skip"``.
    :param event_file_pattern: Glob of the event files, relative to ``model_dir``
        (templated). The default ``eval/*.tfevents.*`` is where Estimator evaluations
        write; ``eval_<name>/*.tfevents.*`` for a named one, ``validation/*.tfevents.*``
        for a writer made with ``tf.summary.create_file_writer(f"{model_dir}/validation")``.
    :param gcp_conn_id: Google Cloud connection for ``gs://`` model dirs (templated).
    :param deferrable: Wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = (
        "model_dir",
        "checkpoint_path",
        "min_step",
        "newer_than_exporter",
        "export_dir_base",
        "required_metrics",
        "thresholds",
        "event_file_pattern",
        "gcp_conn_id",
    )
    ui_color = "#fdf3d8"

    def __init__(
        self,
        *,
        model_dir: str,
        checkpoint_path: str | None = None,
        min_step: int | str | None = None,
        newer_than_exporter: str | None = None,
        export_dir_base: str | None = None,
        required_metrics: Sequence[str] = (),
        thresholds: Mapping[str, Mapping[str, float]] | str | None = None,
        on_threshold_miss: str = "fail",
        event_file_pattern: str = DEFAULT_EVENT_FILE_PATTERN,
        gcp_conn_id: str = StorageHook.default_conn_name,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_threshold_miss not in ON_THRESHOLD_MISS:
            raise ValueError(
                f"on_threshold_miss must be one of {ON_THRESHOLD_MISS}, got {on_threshold_miss!r}"
            )
        self.model_dir = model_dir
        self.checkpoint_path = checkpoint_path
        self.min_step = min_step
        self.newer_than_exporter = newer_than_exporter
        self.export_dir_base = export_dir_base
        self.required_metrics = required_metrics
        self.thresholds = thresholds
        self.on_threshold_miss = on_threshold_miss
        self.event_file_pattern = event_file_pattern
        self.gcp_conn_id = gcp_conn_id
        self.deferrable = deferrable
        self._kept_reader: EvalDirReader | None = None
        self._started_at: float | None = None
        self._search_hint: str | None = None

    def execute(self, context: Context) -> Any:
        """Check the arguments (bad ones fail now, without retry), then wait."""
        self._wait()
        self._storage()
        self._start(context)  # before Airflow's own clock, so the sensor's deadline is first
        return super().execute(context)

    def poke(self, context: Context) -> PokeReturnValue:
        """Look once; in deferrable mode, hand the waiting to the trigger if not found.

        Only what was appended since the previous poke is read: in poke mode the sensor
        keeps its reader between pokes; in reschedule mode (a new process per poke) the
        reader's cursor is kept in the task's state store (`CURSOR_KEY`); the trigger of
        a deferrable sensor keeps its own reader, starting from this poke's cursor.
        """
        wait = self._wait()
        reader = self._reader(context)
        found = self._look(reader, wait)
        if found.result is not None:
            if self.reschedule:
                _store_state(context, CURSOR_KEY, None, self.log)  # done: nothing to resume
                _store_state(context, SEARCH_HINT_KEY, None, self.log)
            return PokeReturnValue(True, self._judge(found.result, wait))
        self._wait_on(context, reader, wait, found)
        return PokeReturnValue(False)

    def _look(self, reader: EvalDirReader, wait: EvalWait) -> EvalLook:
        skipped = reader.skipped_records
        try:
            found = look(
                reader, wait, self.model_dir, self.event_file_pattern, self._hook().storage_for
            )
        except BucketNotFoundError as error:
            raise AirflowFailException(str(error)) from None
        if reader.skipped_records > skipped:
            self.log.warning(
                "skipped %d damaged or undecodable records in %s",
                reader.skipped_records - skipped,
                reader.event_files(),
            )
        return found

    def _wait_on(
        self, context: Context, reader: EvalDirReader, wait: EvalWait, found: EvalLook
    ) -> None:
        """After a look that found nothing: fail if waiting cannot help or the timeout is
        reached; else log what was seen, and defer or keep the cursor for the next poke."""
        if found.mistake is not None:
            raise AirflowFailException(self._failure(found.mistake))
        hint = self._hint(context, reader.storage) if found.matched_files == 0 else None
        status = found.status(hint)
        started_at = self._start(context)
        elapsed = time.time() - started_at
        if elapsed >= self.timeout:
            raise AirflowSensorTimeout(timeout_message(elapsed, self.timeout, status))
        if found.missing is None:
            self.log.info("%s", status)
        else:
            self.log.warning("%s", status)
        if self.deferrable:
            self.defer(
                trigger=self._trigger(wait, reader.cursor(), started_at, hint),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout - elapsed) + AIRFLOW_TIMEOUT_MARGIN,
            )
        if self.reschedule:
            _store_state(context, CURSOR_KEY, reader.cursor(), self.log)

    def _start(self, context: Context) -> float:
        """When the wait began (seconds since the epoch), as Airflow measures a sensor's
        timeout: the first poke in this process, or in reschedule mode the first poke Airflow
        recorded a reschedule for."""
        if self._started_at is None:
            first = None
            if self.reschedule and "ti" in context:
                first = context["ti"].get_first_reschedule_date(context)
            self._started_at = time.time() if first is None else first.timestamp()
        return self._started_at

    def _hint(self, context: Context, storage: Storage) -> str:
        """Where event files are, when the pattern matches none: looked up once per try
        (kept in the task state store in reschedule mode, given to the trigger)."""
        if self._search_hint is None:
            stored = _load_state(context, SEARCH_HINT_KEY, self.log) if self.reschedule else None
            self._search_hint = stored if isinstance(stored, str) else self._look_nearby(storage)
            if self.reschedule and stored != self._search_hint:
                _store_state(context, SEARCH_HINT_KEY, self._search_hint, self.log)
        return self._search_hint

    def _look_nearby(self, storage: Storage) -> str:
        try:
            return nearby_hint(self.model_dir, nearby_event_files(storage, self.model_dir))
        except StorageError as error:  # only a hint is lost
            return f"Could not look for event files elsewhere in {self.model_dir}: {error}"

    def _reader(self, context: Context) -> EvalDirReader:
        """The reader of the previous poke in this process, else a new one (resumed from the
        cursor a previous process left, if any)."""
        if self._kept_reader is None:
            reader = EvalDirReader(self._storage(), self.model_dir, self.event_file_pattern)
            if self.reschedule:
                cursor = _load_state(context, CURSOR_KEY, self.log)
                if cursor is not None and reader.resume(cursor):
                    self.log.info("resuming the eval reader where the previous poke stopped")
            self._kept_reader = reader
        return self._kept_reader

    def execute_complete(self, context: Context, event: Mapping[str, Any]) -> dict[str, Any]:
        """Judge the trigger's result exactly as `poke` judges its own."""
        if event.get("status") == "success":
            return self._judge(EvalResult.from_dict(event["result"]), self._wait())
        if event.get("status") == STATUS_TIMEOUT:
            raise AirflowSensorTimeout(event.get("message"))
        message = self._failure(event.get("message"))
        if event.get("kind") == ERROR_KIND_CONFIGURATION:
            raise AirflowFailException(message)
        if self.never_fail:
            raise AirflowSkipException(message)
        raise EvalMetricsReadError(message)

    def _failure(self, reason: object) -> str:
        return f"waiting for eval results in {self.model_dir} failed: {reason}"

    def _judge(self, result: EvalResult, wait: EvalWait) -> dict[str, Any]:
        misses = threshold_misses(result, wait.thresholds)
        if misses:
            message = (
                f"eval result of step {result.step} ({result.source}) misses its thresholds: "
                + "; ".join(misses)
            )
            if self.on_threshold_miss == "skip":
                raise AirflowSkipException(message)
            raise AirflowFailException(message)
        self.log.info("eval result of step %d: %s", result.step, dict(result.metrics))
        return result.to_dict()

    def _wait(self) -> EvalWait:
        try:
            validate_event_file_pattern(self.event_file_pattern)
            wait = parse_eval_wait(
                checkpoint_path=self.checkpoint_path,
                min_step=self.min_step,
                newer_than_exporter=self.newer_than_exporter,
                export_dir_base=self.export_dir_base,
                required_metrics=self.required_metrics,
                thresholds=_json_or_value(self.thresholds),
            )
            check_exporter_uri(self.model_dir, wait)
            return wait
        except ValueError as error:
            raise AirflowFailException(f"{self.task_id}: {error}") from None

    def _hook(self) -> StorageHook:
        return StorageHook(gcp_conn_id=self.gcp_conn_id)

    def _storage(self) -> Storage:
        return self._hook().storage_for(self.model_dir)

    def _trigger(
        self,
        wait: EvalWait,
        cursor: dict[str, Any] | None = None,
        started_at: float | None = None,
        search_hint: str | None = None,
    ) -> EvalMetricsTrigger:
        return EvalMetricsTrigger(
            model_dir=self.model_dir,
            event_file_pattern=self.event_file_pattern,
            checkpoint_path=wait.checkpoint_path,
            min_step=wait.min_step,
            newer_than_exporter=wait.newer_than_exporter,
            export_dir_base=wait.export_dir_base,
            required_metrics=sorted(wait.wanted_metrics),
            gcp_conn_id=self.gcp_conn_id,
            poke_interval=self.poke_interval,
            exponential_backoff=self.exponential_backoff,
            max_wait=None if self.max_wait is None else self.max_wait.total_seconds(),
            keep_waiting_on_read_error=self.silent_fail,
            cursor=cursor,
            started_at=started_at,
            timeout=None if started_at is None else self.timeout,
            search_hint=search_hint,
        )


CURSOR_KEY = "eval_metrics_reader_cursor"
"""The task state store key of a reschedule-mode sensor's reader cursor."""
SEARCH_HINT_KEY = "eval_metrics_search_hint"
"""The task state store key of where a reschedule-mode sensor found event files (`_hint`)."""


def _load_state(context: Context, key: str, log: Any) -> Any:
    """`key` from the task state store; None when absent, or when there is no store or it
    cannot be read (the store is optional help, never a failure)."""
    store = context.get("task_state_store")
    if store is None:
        return None
    try:
        return store.get(key)
    except Exception as error:
        log.warning("could not read %s from the task state store: %s", key, error)
        return None


def _store_state(context: Context, key: str, value: Any, log: Any) -> None:
    """Keep `value` under `key` for the next poke; None deletes the key (a reader holding
    too much to keep gives a None cursor: the next poke then reads from scratch)."""
    store = context.get("task_state_store")
    if store is None:
        return
    try:
        if value is None:
            store.delete(key)
        else:
            store.set(key, value)
    except Exception as error:  # the store is optional help, never a failure
        log.warning("could not keep %s in the task state store: %s", key, error)


def _json_or_value(value: object) -> object:
    """A rendered template gives JSON text where the DAG author wrote a dict."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value
