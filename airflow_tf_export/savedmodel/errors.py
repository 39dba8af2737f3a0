"""Errors for bad export input. All are ValueErrors: retrying the same export cannot help."""

from __future__ import annotations


class DefinitionError(ValueError):
    """A model definition reference cannot be resolved, or the definition is incomplete."""


class CheckpointError(ValueError):
    """A checkpoint is missing or unreadable; `path` names it."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's variables do not match the model built by the definition."""

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
            parts.append(f"shape differs: {', '.join(mismatched)}")
        super().__init__("; ".join(parts), path)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
