"""One export of a model dir's checkpoint by one strategy, without Airflow.

The export operators and the `airflow-tf-export export` command both run `export_checkpoint`:
resolve the checkpoint, find its eval result (given, or read from the event files), let the
strategy decide, write the SavedModel from a local copy of the checkpoint and publish it.
TensorFlow is imported only when a SavedModel is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import Lineage
from airflow_tf_export.core.strategies import Candidate, ExportStrategy
from airflow_tf_export.storage.base import (
    BucketNotFoundError,
    Storage,
    StorageNotFoundError,
    WrittenModel,
)
from airflow_tf_export.storage.checkpoints import (
    ResolvedCheckpoint,
    checkpoint_files,
    resolve_checkpoint,
)
from airflow_tf_export.storage.confinement import AllowedRoots
from airflow_tf_export.storage.export_flow import (
    ExportOutcome,
    ValidateStaged,
    export_with_strategy,
)
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.uris import exporter_uri

if TYPE_CHECKING:
    from airflow_tf_export.events.eval_dir import EvalDirReader
    from airflow_tf_export.savedmodel.validation import ValidationOptions

WriteCheckpoint = Callable[[ResolvedCheckpoint, Path], WrittenModel]
"""Writes the SavedModel of a checkpoint of the model dir into an empty local directory."""


@contextmanager
def local_checkpoint(storage: Storage, checkpoint: str) -> Iterator[str]:
    """The checkpoint as a local path, named as the original, for TensorFlow to restore:
    where it is on local disk (nothing copied), its files (a TF prefix's `.index` and
    `.data-*`, or a Keras `.weights.h5` file) downloaded to a local temporary directory from
    GCS (`Storage.local_files`).

    A bad-input error (ValueError) raised inside names the user's checkpoint, not a
    temporary copy: the copy's directory is replaced by the checkpoint's own in its message.
    One raised after a file of the checkpoint vanished (a trainer's checkpoint retention
    deleted it while it was read in place) is no bad input: StorageNotFoundError, which the
    task's retries apply to (a retry exports the checkpoint chosen then).
    """
    parent, names = checkpoint_files(storage, checkpoint)
    with storage.local_files(parent, names) as local:
        try:
            yield str(local / checkpoint.rstrip("/").rpartition("/")[2])
        except ValueError as error:
            gone = _vanished(storage, parent, names)
            if gone:
                raise StorageNotFoundError(
                    f"checkpoint {checkpoint} was deleted while it was being exported "
                    f"({', '.join(gone)} gone; e.g. the trainer's checkpoint retention): {error}"
                ) from error
            raise _naming(error, str(local), parent.rstrip("/")) from error


def _vanished(storage: Storage, parent: str, names: Sequence[str]) -> list[str]:
    """Those of the checkpoint files `names` in `parent` that are no longer there."""
    return [name for name in names if not storage.exists(storage.join(parent, name))]


def _naming(error: ValueError, local_dir: str, stored_dir: str) -> ValueError:
    """`error` (same type and attributes) with `local_dir` replaced by `stored_dir` in its
    message and in its `path`, if it has one (CheckpointError)."""
    renamed = type(error).__new__(type(error))
    renamed.__dict__.update(error.__dict__)
    renamed.args = tuple(
        arg.replace(local_dir, stored_dir) if isinstance(arg, str) else arg for arg in error.args
    )
    path = getattr(error, "path", None)
    if isinstance(path, str):
        renamed.path = path.replace(local_dir, stored_dir)  # type: ignore[attr-defined]
    return renamed


def saved_model_writer(
    definition_reference: str | Callable[..., Any],
    storage: Storage,
    *,
    modes: Sequence[str],
    assets_extra: Mapping[str, str] | None = None,
    as_text: bool = False,
    allowed_roots: AllowedRoots | None = None,
) -> WriteCheckpoint:
    """The SavedModel writer of a model definition (an import string or a callable, resolved
    now: a bad one fails before any checkpoint is read) for checkpoints stored in `storage`.
    The `assets_extra` sources are checked now too (against `allowed_roots` when set)."""
    from airflow_tf_export.savedmodel.assets_extra import plan_assets_extra
    from airflow_tf_export.savedmodel.definition import resolve_definition
    from airflow_tf_export.savedmodel.modes import normalize_modes
    from airflow_tf_export.savedmodel.writer import write_saved_model

    definition = resolve_definition(definition_reference)
    chosen = normalize_modes(modes)
    plan_assets_extra(assets_extra, allowed_roots)

    def write(checkpoint: ResolvedCheckpoint, export_dir: Path) -> WrittenModel:
        with local_checkpoint(storage, checkpoint.path) as local:
            written = write_saved_model(
                definition,
                local,
                export_dir,
                modes=chosen,
                assets_extra=assets_extra,
                as_text=as_text,
                allowed_roots=allowed_roots,
            )
        if written.global_step != checkpoint.step:
            raise ValueError(
                f"checkpoint {checkpoint.path!r} is named for step {checkpoint.step} but "
                f"holds global step {written.global_step}; save it as ckpt-<global step>"
            )
        return written

    return write


def saved_model_validator(
    definition_reference: str | Callable[..., Any],
    storage_for: Callable[[str], Storage],
    options: ValidationOptions,
) -> ValidateStaged:
    """The check of each staged SavedModel of a model definition before it is published
    (savedmodel/validation.py); `storage_for` reads the warmup examples file."""
    from airflow_tf_export.savedmodel.definition import resolve_definition
    from airflow_tf_export.savedmodel.validation import staged_validator

    return staged_validator(resolve_definition(definition_reference), storage_for, options)


class EvalEvents:
    """The eval event files of a model dir: read when a result is first needed, then read
    incrementally (only what was appended) on each later lookup. Best reads the candidate's
    eval result and those of the foreign versions' steps from them."""

    def __init__(self, storage: Storage, model_dir: str, event_file_pattern: str) -> None:
        self.storage = storage
        self.model_dir = model_dir
        self.event_file_pattern = event_file_pattern
        self._reader: EvalDirReader | None = None

    def result(self, step: int) -> EvalResult:
        """The merged eval result of `step`; ValueError lists what exists."""
        reader = self._refreshed()
        try:
            return reader.result(step)
        except KeyError:
            steps = reader.steps()
            shown = ", ".join(str(s) for s in steps[-10:]) or "none"
            raise ValueError(
                f"no eval result for step {step} in {reader.pattern_uri} "
                f"({len(reader.event_files())} event files; newest steps: {shown}); pass "
                "eval_result or wait for the evaluation with EvalMetricsSensor"
            ) from None

    def results(self, steps: Sequence[int]) -> dict[int, EvalResult]:
        """The eval results of those `steps` that have one (step -> result)."""
        reader = self._refreshed()
        found = {}
        for step in steps:
            try:
                found[step] = reader.result(step)
            except KeyError:
                continue
        return found

    def _refreshed(self) -> EvalDirReader:
        """The reader, with what was appended since the last lookup read. The events package
        (protobuf descriptors) is imported here, at execute time, to keep DAG parsing fast."""
        from airflow_tf_export.events.eval_dir import EvalDirReader

        if self._reader is None:
            self._reader = EvalDirReader(self.storage, self.model_dir, self.event_file_pattern)
        try:
            self._reader.refresh()
        except BucketNotFoundError as err:
            # Bad input; any other StorageError (an outage) stays retryable.
            raise ValueError(
                f"cannot read eval event files {self._reader.pattern_uri}: {err}"
            ) from None
        return self._reader


@dataclass(frozen=True)
class ExportRun:
    """What `export_checkpoint` did: the exporter dir, the candidate and the outcome."""

    exporter: ExporterDir
    candidate: Candidate
    outcome: ExportOutcome

    def to_dict(self, exporter_name: str, strategy_kind: str) -> dict[str, Any]:
        """The JSON-able outcome (the export operators' XCom, the CLI's `--json`)."""
        eval_result = self.candidate.eval_result
        return {
            "exporter": exporter_name,
            "strategy": strategy_kind,
            "uri": self.exporter.uri,
            "checkpoint_path": self.candidate.checkpoint_path,
            "global_step": self.candidate.global_step,
            "eval_result": None if eval_result is None else eval_result.to_dict(),
            "skipped": not self.outcome.exported and self.outcome.decision.existing_version is None,
            **self.outcome.to_dict(),
        }


def export_checkpoint(
    *,
    storage_for: Callable[[str], Storage],
    model_dir: str,
    name: str,
    strategy: ExportStrategy,
    write: Callable[[Storage], WriteCheckpoint],
    export_dir_base: str | None = None,
    checkpoint_path: str | None = None,
    eval_result: EvalResult | None = None,
    events: Callable[[Storage], EvalEvents | None] = lambda storage: None,
    final_export: Callable[[int], bool] = lambda step: False,
    lineage: Lineage | None = None,
    validate: ValidateStaged | None = None,
) -> ExportRun:
    """Export a checkpoint of `model_dir` into `<export_dir_base>` (default
    `<model_dir>/export/<name>`) if `strategy` says so, then apply its retention.

    The checkpoint is `checkpoint_path`, else the one `eval_result` records, else the
    latest. `events(storage)` gives the eval event files when the candidate's eval result
    is to be read from them (when none is given) and the foreign versions' (Best).
    `write(storage)` builds the SavedModel writer: the model definition is resolved before
    any checkpoint is read. `final_export(global_step)` says whether the checkpoint is the
    final one (Final). `validate` checks the staged SavedModel before it is published (a
    ValidationError, a ValueError, leaves it unpublished). ValueError (bad input) names what
    is wrong.
    """
    model_storage = storage_for(model_dir)
    base = exporter_uri(model_dir, name, export_dir_base)
    exporter = ExporterDir(storage_for(base), base)
    writer = write(model_storage)
    found = events(model_storage)
    checkpoint = resolve_checkpoint(
        model_storage,
        model_dir,
        checkpoint_path,
        recorded_path=eval_result.checkpoint_path if eval_result else None,
        step=eval_result.step if eval_result else None,
    )
    if eval_result is None and found is not None:
        eval_result = found.result(checkpoint.step)
    candidate = Candidate(
        checkpoint_path=checkpoint.path, global_step=checkpoint.step, eval_result=eval_result
    )
    outcome = export_with_strategy(
        exporter,
        strategy,
        candidate,
        lambda export_dir: writer(checkpoint, export_dir),
        is_the_final_export=final_export(checkpoint.step),
        lineage=lineage,
        foreign_eval_results=None if found is None else found.results,
        validate=validate,
    )
    return ExportRun(exporter, candidate, outcome)
