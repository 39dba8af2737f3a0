"""Writes committed versions straight into a local exporter dir (what a publish leaves:
a SavedModel's files, the record and its checksum), thousands in seconds, for the exporter
dir tests and benchmark. No fsync, no lock: test data only."""

from __future__ import annotations

from pathlib import Path

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import (
    METADATA_FILENAME,
    ExportMetadata,
    ManifestEntry,
    metadata_checksum_name,
)

MODEL_FILES = {
    "saved_model.pb": b"graph" * 60,
    "fingerprint.pb": b"f" * 50,
    "variables/variables.index": b"index" * 8,
    "variables/variables.data-00000-of-00001": b"d" * 800,
}


def version_files(
    version: int, step: int, loss: float | None, path: str | None = None
) -> dict[str, bytes]:
    """Every file of a committed version (relative name -> bytes), the record's included."""
    record = (
        ExportMetadata(
            exporter="exporter",
            strategy="latest",
            version=version,
            checkpoint_path=path or f"/model/ckpt-{step}",
            global_step=step,
            created_at="2026-11-20T12:00:00Z",
            eval_result=None if loss is None else EvalResult(step, {"loss": loss}),
            manifest=tuple(
                ManifestEntry(name, len(data), "00000000")
                for name, data in sorted(MODEL_FILES.items())
            ),
        )
        .to_json()
        .encode()
    )
    return {**MODEL_FILES, metadata_checksum_name(record): b"", METADATA_FILENAME: record}


def write_version(
    exporter: Path, version: int, step: int, loss: float | None, path: str | None = None
) -> None:
    """Write a committed version into the local exporter dir `exporter`."""
    for name, data in version_files(version, step, loss, path).items():
        target = exporter / str(version) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
