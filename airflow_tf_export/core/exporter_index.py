"""The exporter dir's index: what earlier scans found in each committed version's record,
keyed by the record's stamp, so a decision reads only the records that changed.

The index holds no state of its own: each row repeats the part of a version's
`export_metadata.json` that decisions and retention read (exporter, strategy, version,
checkpoint path, global step, creation time, eval result), with the stamp its record had
when it was read (see `Storage.list_dir_stamped`). A row counts only while the listing shows
the same version with the same stamp; a version without a matching row is read as if there
were no index. The file starts with a fixed header holding the SHA-256 of the rows that
follow, so a truncated or hand-edited index is never used (it is read as absent).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import ExportMetadata

INDEX_NAME = ".airflow-tf-export-index.json"
INDEX_FORMAT = "airflow-tf-export-index/1"
_HEADER = re.compile(
    rb'\{"format": "airflow-tf-export-index/1", "sha256": "([0-9a-f]{64})", "rows": '
)
_TRAILER = b"}\n"


@dataclass(frozen=True)
class IndexedVersion:
    """One committed version as an earlier scan read it: the stamp its record had, and the
    record without what decisions never read (manifest, tags, signatures, lineage, reason)."""

    stamp: str
    summary: ExportMetadata


def summary_of(meta: ExportMetadata) -> ExportMetadata:
    """The part of a record the index keeps (and decisions and retention read)."""
    return ExportMetadata(
        exporter=meta.exporter,
        strategy=meta.strategy,
        version=meta.version,
        checkpoint_path=meta.checkpoint_path,
        global_step=meta.global_step,
        created_at=meta.created_at,
        eval_result=meta.eval_result,
    )


def encode_index(versions: Iterable[IndexedVersion]) -> bytes:
    """The index file's bytes: the header with the rows' SHA-256, then the rows by version."""
    ordered = sorted(versions, key=lambda v: v.summary.version)
    rows = json.dumps([_row(v) for v in ordered], separators=(",", ":"), allow_nan=False).encode()
    digest = hashlib.sha256(rows).hexdigest()
    header = f'{{"format": "{INDEX_FORMAT}", "sha256": "{digest}", "rows": '.encode()
    return header + rows + _TRAILER


def decode_index(data: bytes) -> dict[str, IndexedVersion] | None:
    """The rows of an index file by version dir name, or None when it is not one this release
    wrote whole: an unknown format, rows that do not match their SHA-256 (truncated, edited),
    or rows of the wrong shape. None means "read every record", never an error: the index is
    a cache."""
    header = _HEADER.match(data)
    if header is None or not data.endswith(_TRAILER):
        return None
    rows = data[header.end() : -len(_TRAILER)]
    if hashlib.sha256(rows).hexdigest() != header.group(1).decode():
        return None
    try:
        return {str(v.summary.version): v for v in map(_indexed, json.loads(rows))}
    except (ValueError, TypeError, KeyError, IndexError):
        return None


def _row(indexed: IndexedVersion) -> list[Any]:
    meta = indexed.summary
    found = meta.eval_result
    result = (
        None
        if found is None
        else [found.step, _metrics(found), found.checkpoint_path, found.wall_time, found.source]
    )
    return [
        meta.version,
        indexed.stamp,
        meta.exporter,
        meta.strategy,
        meta.checkpoint_path,
        meta.global_step,
        meta.created_at,
        result,
    ]


def _indexed(row: list[Any]) -> IndexedVersion:
    """One row back as a summary; TypeError or ValueError when it has the wrong shape. The
    rows passed their SHA-256, so only their shape is checked (not each metric's spelling:
    `float` takes a number, or "NaN" and the infinities as `EvalResult.to_dict` writes them)."""
    version, stamp, exporter, strategy, path, step, created_at, result = row
    if not (
        type(version) is int
        and type(step) is int
        and type(stamp) is str
        and type(path) is str
        and type(exporter) is str
        and type(strategy) is str
        and type(created_at) is str
    ):
        raise TypeError(f"index row {row!r} has a field of the wrong type")
    summary = ExportMetadata(
        exporter,
        strategy,
        version,
        path,
        step,
        created_at,
        None if result is None else _eval_result(result),
    )
    return IndexedVersion(stamp, summary)


def _metrics(result: EvalResult) -> dict[str, float | str]:
    """The metrics as `EvalResult.to_dict` writes them (NaN and infinities as strings)."""
    metrics: dict[str, float | str] = result.to_dict()["metrics"]
    return metrics


def _eval_result(data: list[Any]) -> EvalResult:
    step, metrics, checkpoint_path, wall_time, source = data
    if type(step) is not int:
        raise TypeError(f"index eval result step {step!r} is not int")
    return EvalResult(
        step,
        {str(k): float(v) for k, v in metrics.items()},
        checkpoint_path,
        wall_time,
        source,
    )
