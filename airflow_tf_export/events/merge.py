"""Merge the events of one or more event files into one eval result per step.

An eval directory can hold several event files: each evaluator (re)start opens a new one and
may evaluate a step again. Values are merged per (step, tag); when two writes collide the
later one wins, "later" meaning the greater event `wall_time`, then the event file URI (event
file names start with their creation time, so they sort by age), then the record offset.
The merge is order-independent: reading files in any order, all at once or in increments,
gives the same results.

Events arrive decoded (only their usable values: scalars and strings); a step's result is
built when it is asked for. `drop_below` forgets steps a wait can no longer use.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.events.event_runs import Write

CHECKPOINT_PATH_TAG = "checkpoint_path"
"""The string summary Estimator writes after each evaluation: the checkpoint evaluated."""

# (wall_time, event file URI, record offset, scalars, strings); the first three decide
# which write is later.
Stored = tuple[float, str, int, Mapping[str, float], Mapping[str, str]]


class StepMerger:
    """Accumulates decoded events; gives the merged eval result of each step."""

    def __init__(self) -> None:
        # The first write of each step, and the rarer later ones: one object per event keeps
        # the garbage collector's work (and memory) small on large files.
        self._first: dict[int, Stored] = {}
        self._more: dict[int, list[Stored]] = {}
        self._ascending: list[int] | None = []  # steps in order; None when it must be sorted

    def __len__(self) -> int:
        """How many writes are held."""
        return len(self._first) + sum(map(len, self._more.values()))

    def add(self, uri: str, writes: Iterable[Write]) -> None:
        """Keep the usable summary events read from the event file `uri`."""
        first, more, ascending = self._first, self._more, self._ascending
        for offset, step, wall_time, scalars, strings in writes:
            if not scalars and CHECKPOINT_PATH_TAG not in strings:
                continue
            stored = (wall_time, uri, offset, scalars, strings)
            if step in first:
                more.setdefault(step, []).append(stored)
                continue
            first[step] = stored
            if ascending is not None and (not ascending or step > ascending[-1]):
                ascending.append(step)  # evaluators write steps in order: no re-sorting
            else:
                ascending = None
        self._ascending = ascending

    def stored(self) -> Iterator[tuple[int, Stored]]:
        """Every write held, with its step."""
        for step, write in self._first.items():
            yield step, write
        for step, writes in self._more.items():
            for write in writes:
                yield step, write

    def drop_below(self, step: int) -> None:
        """Forget every step below `step`."""
        for held in [held for held in self._first if held < step]:
            del self._first[held]
            self._more.pop(held, None)
        if self._ascending is not None:
            del self._ascending[: bisect_left(self._ascending, step)]

    def result(self, step: int) -> EvalResult | None:
        """The merged result of `step`; None when nothing usable was written at it."""
        first = self._first.get(step)
        if first is None:
            return None
        if step not in self._more:
            wall_time, uri, _, scalars, strings = first
            return EvalResult(step, scalars, strings.get(CHECKPOINT_PATH_TAG), wall_time, uri)
        metrics: dict[str, float] = {}
        checkpoint_path = None
        writes = sorted([first, *self._more[step]], key=lambda write: write[:3])
        for _, _, _, scalars, strings in writes:
            metrics.update(scalars)
            checkpoint_path = strings.get(CHECKPOINT_PATH_TAG, checkpoint_path)
        newest = writes[-1]
        return EvalResult(step, metrics, checkpoint_path, newest[0], newest[1])

    def newest_first(self) -> Iterator[EvalResult]:
        """Results from the highest step down, built lazily."""
        for step in reversed(self._steps()):
            result = self.result(step)
            if result is not None:
                yield result

    def results(self) -> list[EvalResult]:
        """Every result, ascending by step."""
        found = map(self.result, self._steps())
        return [result for result in found if result is not None]

    def steps(self) -> list[int]:
        """Steps that have a result, ascending."""
        return list(self._steps())

    def clear(self) -> None:
        """Forget everything (an event file was replaced and must be read again)."""
        self._first.clear()
        self._more.clear()
        self._ascending = []

    def _steps(self) -> list[int]:
        if self._ascending is None:
            self._ascending = sorted(self._first)
        return self._ascending
