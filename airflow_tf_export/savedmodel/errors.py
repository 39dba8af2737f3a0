"""Errors for bad export input. All are ValueErrors: retrying the same export cannot help;
except DefinitionUnavailableError, an I/O error (OSError) while loading a model definition,
which a retry may well fix.

CheckpointError is the storage layer's (the checkpoint resolver raises it too), so one type
names a missing or unreadable checkpoint wherever it is found.
"""

from __future__ import annotations

from airflow_tf_export.storage.checkpoints import CheckpointError

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "DefinitionError",
    "DefinitionUnavailableError",
]


class DefinitionError(ValueError):
    """A model definition reference cannot be resolved, or the definition is incomplete."""


class DefinitionUnavailableError(OSError):
    """Importing a model definition's module, or calling its factory, raised an OSError (a
    network file system that did not answer, a file not there yet): possibly transient, so
    it is not a ValueError and the task's retries apply. The message names the definition."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's variables do not match the model built by the definition.

    `missing`: the model's variables the checkpoint lacks; `unexpected`: the checkpoint's
    variables the model has no place for; `mismatched`: variables both have, with a different
    shape (or, for TF1 graphs, dtype)."""

    def __init__(
        self,
        path: str,
        *,
        missing: tuple[str, ...],
        unexpected: tuple[str, ...],
        mismatched: tuple[str, ...],
    ) -> None:
        parts = [f"checkpoint {path} does not match the model"]
        if missing:
            parts.append(f"missing from the checkpoint: {', '.join(missing)}")
        if unexpected:
            parts.append(f"in the checkpoint but not in the model: {', '.join(unexpected)}")
        if mismatched:
            parts.append(f"shape or dtype differs: {', '.join(mismatched)}")
        super().__init__("; ".join(parts), path)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
