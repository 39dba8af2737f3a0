"""Builders for the records core decisions read (committed versions' metadata)."""

from __future__ import annotations

from collections.abc import Mapping

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import ExportMetadata

BASE_VERSION = 1_795_200_000


def make_meta(
    version: int,
    *,
    step: int = 0,
    metrics: Mapping[str, float] | None = None,
    checkpoint_path: str | None = None,
    created_at: str = "2026-11-20T12:00:00Z",
    exporter: str = "exporter",
    strategy: str = "best",
) -> ExportMetadata:
    """Committed metadata for `version`; an eval result at `step` when `metrics` is given."""
    path = checkpoint_path if checkpoint_path is not None else f"/model/ckpt-{step}"
    return ExportMetadata(
        exporter=exporter,
        strategy=strategy,
        version=version,
        checkpoint_path=path,
        global_step=step,
        created_at=created_at,
        eval_result=None
        if metrics is None
        else EvalResult(step=step, metrics=dict(metrics), checkpoint_path=path),
    )
