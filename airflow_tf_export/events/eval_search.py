"""Find the result an eval-metrics wait is for: read what is new in the event files, look up
the exporter's newest export when the target needs it, and let `core.eval_wait` decide. The
sensor's poke and the trigger both run exactly this."""

from __future__ import annotations

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.eval_wait import EvalWait, select_result
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.storage.exporter_dir import ExporterDir


def find_eval_result(reader: EvalDirReader, wait: EvalWait, model_dir: str) -> EvalResult | None:
    """Read what is new in the eval event files and select the awaited result."""
    reader.refresh()
    exported_step = None
    if wait.newer_than_exporter is not None:
        storage = reader.storage
        exporter_uri = wait.export_dir_base or storage.join(
            model_dir, "export", wait.newer_than_exporter
        )
        newest = ExporterDir(storage, exporter_uri).newest_committed()
        exported_step = None if newest is None else newest.global_step
    return select_result(reader.newest_first(), wait, exported_step)
