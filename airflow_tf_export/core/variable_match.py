"""Does a name-based (TF1) checkpoint hold every variable a graph restores by name?

A `tf.compat.v1.train.Saver` restores each variable of a graph from the checkpoint entry of
the same name. The comparison is made before anything is restored or written, so a
mismatch is reported in one go: every variable the checkpoint lacks, every variable whose
shape or dtype differs, and, for orientation, the checkpoint's variables no graph restores.
Extra checkpoint variables alone are no mismatch (optimizer slots are normal in a checkpoint
exported for serving only).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredVariable:
    """A variable's shape (None for an unknown dimension, graph side only) and dtype name."""

    shape: tuple[int | None, ...]
    dtype: str

    def describe(self) -> str:
        """`float32 [6, 4]`."""
        return f"{self.dtype} {list(self.shape)}"


@dataclass(frozen=True)
class VariableMismatch:
    """Names with shapes: `missing` (wanted, not stored), `mismatched` (stored with another
    shape or dtype), `unexpected` (stored, wanted by no graph)."""

    missing: tuple[str, ...]
    mismatched: tuple[str, ...]
    unexpected: tuple[str, ...]

    @property
    def fails(self) -> bool:
        """Whether the checkpoint cannot be restored: something is missing or differs."""
        return bool(self.missing or self.mismatched)


def compare_variables(
    stored: Mapping[str, StoredVariable], wanted: Iterable[Mapping[str, StoredVariable]]
) -> VariableMismatch:
    """Compare the checkpoint's variables with those of each graph restoring from it.

    A graph variable fits a stored one of the same name and dtype whose shape agrees in
    every dimension the graph knows. Names are listed once each, sorted.
    """
    missing: dict[str, str] = {}
    mismatched: dict[str, str] = {}
    used: set[str] = set()
    for graph in wanted:
        for name, variable in graph.items():
            used.add(name)
            saved = stored.get(name)
            if saved is None:
                missing.setdefault(name, f"{name} {variable.describe()}")
            elif not _fits(saved, variable):
                mismatched.setdefault(
                    name,
                    f"{name}: checkpoint {saved.describe()}, graph {variable.describe()}",
                )
    unexpected = [f"{name} {stored[name].describe()}" for name in sorted(set(stored) - used)]
    return VariableMismatch(
        missing=tuple(missing[name] for name in sorted(missing)),
        mismatched=tuple(mismatched[name] for name in sorted(mismatched)),
        unexpected=tuple(unexpected),
    )


def _fits(saved: StoredVariable, variable: StoredVariable) -> bool:
    if saved.dtype != variable.dtype or len(saved.shape) != len(variable.shape):
        return False
    return all(
        wanted is None or wanted == size
        for size, wanted in zip(saved.shape, variable.shape, strict=True)
    )


def unsaved_variables(
    graphs: Iterable[tuple[str, Mapping[str, StoredVariable]]],
) -> dict[str, tuple[str, ...]]:
    """Per graph after the first, the variables the first graph lacks, sorted (graphs with
    none are left out). A multi-mode SavedModel saves one `variables/`, from its first
    graph; a later graph with variables of its own would load without their values."""
    ordered = list(graphs)
    if not ordered:
        return {}
    (_, first), later = ordered[0], ordered[1:]
    lacking = {name: tuple(sorted(set(graph) - set(first))) for name, graph in later}
    return {name: names for name, names in lacking.items() if names}
