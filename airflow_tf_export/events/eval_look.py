"""One look of an eval-metrics wait, taken alike by the sensor's poke and by its trigger: read
what is new, then say what was found, what to log, and whether waiting can still help."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.eval_wait import (
    EvalWait,
    MissingMetrics,
    describe_search,
    metric_name_error,
    missing_metrics,
)
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.eval_search import find_eval_result, why_still_waiting
from airflow_tf_export.storage.base import Storage


@dataclass(frozen=True)
class EvalLook:
    """What one look found: the awaited result, or why the wait goes on (or cannot)."""

    result: EvalResult | None
    pattern_uri: str
    event_file_pattern: str
    matched_files: int
    reason: str
    missing: MissingMetrics | None
    mistake: str | None
    """A misspelt metric name (`core.eval_wait.metric_name_error`): the wait must fail."""

    def status(self, hint: str | None) -> str:
        """The log line of a look that found nothing; `hint` says where event files are
        when none matched (`core.eval_wait.nearby_hint`)."""
        return describe_search(
            self.pattern_uri, self.event_file_pattern, self.matched_files, self.reason, hint
        )


def look(
    reader: EvalDirReader,
    wait: EvalWait,
    model_dir: str,
    event_file_pattern: str,
    storage_for: Callable[[str], Storage] | None = None,
) -> EvalLook:
    """Read what is new (`find_eval_result`) and judge what was read."""
    result = find_eval_result(reader, wait, model_dir, storage_for)
    missing = None if result is not None else missing_metrics(reader.newest_first(), wait)
    return EvalLook(
        result=result,
        pattern_uri=reader.pattern_uri,
        event_file_pattern=event_file_pattern,
        matched_files=len(reader.event_files()),
        reason="" if result is not None else why_still_waiting(reader, wait),
        missing=missing,
        mistake=metric_name_error(missing, wait),
    )
