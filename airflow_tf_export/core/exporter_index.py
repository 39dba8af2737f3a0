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
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import ExportMetadata

INDEX_NAME = ".airflow-tf-export-index.json"
INDEX_FORMAT = "airflow-tf-export-index/1"
_HEADER = re.compile(
    rb'\{"format": "airflow-tf-export-index/1", "sha256": "([0-9a-f]{64})", "rows": '
)
_TRAILER = b"}\n"


class IndexedEval(NamedTuple):
    """What decisions read of an index row's eval result: its step and metrics (see
    `core.eval_result.EvalFacts`); the row's full `EvalResult` is in its `summary`."""

    step: int
    metrics: Mapping[str, float]


class IndexedVersion:
    """One committed version as an earlier scan read it: the stamp its record had then, and
    the index row holding what decisions and retention read of the record. What every
    decision reads of every version is kept as attributes; the eval result and the summary
    record are built only when asked for, so a decision over thousands of versions builds
    objects for the few it needs (see `core.strategies.versions_deciding`)."""

    __slots__ = (
        "_eval_result",
        "_numbers_only",
        "_summary",
        "checkpoint_path",
        "global_step",
        "row",
        "stamp",
        "version",
    )

    def __init__(self, row: list[Any]) -> None:
        """A row as `encode_index` writes it; TypeError or ValueError when it has the wrong
        shape. The rows passed their SHA-256, so only their shape is checked."""
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
        self.version: int = version
        self.stamp: str = stamp
        self.checkpoint_path: str = path
        self.global_step: int = step
        self.row = row
        self._numbers_only = result is None or _numbers_only(row, result)
        self._eval_result: IndexedEval | None = None
        self._summary: ExportMetadata | None = None

    @classmethod
    def of(cls, stamp: str, meta: ExportMetadata) -> IndexedVersion:
        """The row of a record read in full, whose stamp was `stamp`."""
        found = None if meta.eval_result is None else meta.eval_result.to_dict()
        result = (
            None
            if found is None
            else [
                found["step"],
                found["metrics"],
                found["checkpoint_path"],
                found["wall_time"],
                found["source"],
            ]
        )
        return cls(
            [
                meta.version,
                stamp,
                meta.exporter,
                meta.strategy,
                meta.checkpoint_path,
                meta.global_step,
                meta.created_at,
                result,
            ]
        )

    @property
    def eval_result(self) -> IndexedEval | None:
        """The step and metrics of the eval result the record holds, if any."""
        found = self.row[7]
        if found is not None and self._eval_result is None:
            self._eval_result = IndexedEval(found[0], self._metrics(found[1]))
        return self._eval_result

    @property
    def summary(self) -> ExportMetadata:
        """The record as far as the index keeps it: no manifest, tags, signatures, lineage,
        reason or validation."""
        if self._summary is None:
            _version, _stamp, exporter, strategy, _path, _step, created_at, found = self.row
            result = None
            if found is not None:
                step, metrics, checkpoint_path, wall_time, source = found
                result = EvalResult(
                    step, self._metrics(metrics), checkpoint_path, wall_time, source
                )
            self._summary = ExportMetadata(
                exporter,
                strategy,
                self.version,
                self.checkpoint_path,
                self.global_step,
                created_at,
                result,
            )
        return self._summary

    def _metrics(self, metrics: dict[str, Any]) -> Mapping[str, float]:
        """The row's metrics as numbers: its own dict when it holds numbers only (the row is
        never changed), else a copy with "NaN" and the infinities as floats."""
        return metrics if self._numbers_only else {k: float(v) for k, v in metrics.items()}


def encode_index(versions: Iterable[IndexedVersion]) -> bytes:
    """The index file's bytes: the header with the rows' SHA-256, then the rows by version."""
    ordered = [v.row for v in sorted(versions, key=lambda v: v.version)]
    rows = json.dumps(ordered, separators=(",", ":"), allow_nan=False).encode()
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
        return {str(v.version): v for v in map(IndexedVersion, json.loads(rows))}
    except (ValueError, TypeError):
        return None


_NON_FINITE = frozenset(["NaN", "Infinity", "-Infinity"])


def _numbers_only(row: list[Any], result: list[Any]) -> bool:
    """Whether the row's eval result holds numbers only (so an eval result may share the
    row's dict: the row is never changed), not also "NaN" or an infinity as
    `EvalResult.to_dict` writes them; TypeError or ValueError when it has the wrong shape."""
    step, metrics, _checkpoint_path, _wall_time, _source = result
    if type(step) is not int or type(metrics) is not dict:
        raise TypeError(f"index row {row!r} has an eval result of the wrong shape")
    numbers_only = True
    for value in metrics.values():
        if type(value) is not float:
            if value not in _NON_FINITE:
                raise ValueError(f"index row {row!r} has a metric that is not a number")
            numbers_only = False
    return numbers_only
