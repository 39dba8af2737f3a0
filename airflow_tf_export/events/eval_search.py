"""Find the result an eval-metrics wait is for: read what is new in the event files, look up
the highest step the exporter holds when the target needs it (its committed versions and the
foreign ones, e.g. a tf.estimator's exports), and let `core.eval_wait` decide. The sensor's
poke and the trigger both run exactly this."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.eval_wait import (
    EvalWait,
    lowest_useful_step,
    select_result,
    settling_rule,
    why_not_found,
)
from airflow_tf_export.core.foreign import newest_exported_step
from airflow_tf_export.core.metadata import VersionFacts
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.storage.base import Storage
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.uris import exporter_uri


def find_eval_result(
    reader: EvalDirReader,
    wait: EvalWait,
    model_dir: str,
    storage_for: Callable[[str], Storage] | None = None,
) -> EvalResult | None:
    """Read what is new in the eval event files and select the awaited result.

    Only steps that could end the wait are kept: below `min_step`, or at or below the
    highest step the exporter holds (committed or foreign, through the exporter dir's
    verified index: one listing, and a full check of the version holding the highest
    step, not a read of every record), nothing is decoded
    (`core.eval_wait.lowest_useful_step`), and once a result ends the wait, older steps are
    dropped as reading goes on.

    `storage_for` opens the exporter dir of a `newer_than_exporter` wait, which may live on
    another backend than the event files (default: the event files' storage).
    """
    exported_step = None
    if wait.newer_than_exporter is not None:
        uri = exporter_uri(model_dir, wait.newer_than_exporter, wait.export_dir_base)
        storage = reader.storage if storage_for is None else storage_for(uri)
        exporter = ExporterDir(storage, uri)
        state = exporter.scan_indexed()
        while (top := _highest_step(state.versions())) is not None and top in state.indexed:
            state = exporter.confirm(state, [top])
        exported_step = newest_exported_step(
            (m.global_step for m in state.versions()), state.foreign_versions
        )
    reader.set_min_step(lowest_useful_step(wait, exported_step))
    reader.refresh(settling_rule(wait, exported_step))
    return select_result(reader.newest_first(), wait, exported_step)


def why_still_waiting(reader: EvalDirReader, wait: EvalWait) -> str:
    """What the newest result read lacks, for the log of a wait that goes on."""
    reason = why_not_found(reader.newest_first(), wait)
    if reader.min_step is None:
        return reason
    return f"{reason} (events below step {reader.min_step} are not read)"


def _highest_step(committed: Sequence[VersionFacts]) -> int | None:
    """The version holding the highest global step (checked in full before it counts: a
    version that lost a file since the index recorded it is not committed)."""
    top = max(committed, key=lambda m: (m.global_step, m.version), default=None)
    return None if top is None else top.version
