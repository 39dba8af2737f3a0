"""Merge the events of one or more event files into one eval result per step.

An eval directory can hold several event files: each evaluator (re)start opens a new one and
may evaluate a step again. Values are merged per (step, tag); when two writes collide the
later one wins, "later" meaning the greater event `wall_time`, then the event file URI (event
file names start with their creation time, so they sort by age), then the record offset.
The merge is order-independent: reading files in any order, all at once or in increments,
gives the same results.

Events arrive decoded (only their usable values: scalars and strings); a step's result is
built when it is asked for. `drop_below` forgets steps a wait can no longer use. A bundle
(see `event_runs.bundle`) stands for several events of one step; when its step has other
events too, it is taken apart into them, so the merge is the same as event by event.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterator, Mapping
from itertools import repeat
from operator import itemgetter, methodcaller

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.events.event_runs import Parts, Write

CHECKPOINT_PATH_TAG = "checkpoint_path"
"""The string summary Estimator writes after each evaluation: the checkpoint evaluated."""

# (wall_time, event file URI, record offset, scalars, strings, parts); the first three
# decide which write is later.
Stored = tuple[float, str, int, Mapping[str, float], Mapping[str, str], Parts | None]


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

    def add(self, uri: str, writes: list[Write]) -> None:
        """Keep the usable summary events read from the event file `uri`.

        A batch of steps all new, or all already held (a TF2 writer's second metric of
        each step), is filed without a Python step per event.
        """
        if not all(map(itemgetter(3), writes)):  # some without scalars: keep checkpoint paths
            writes = [write for write in writes if write[3] or CHECKPOINT_PATH_TAG in write[4]]
        steps = list(map(itemgetter(1), writes))
        stored = list(
            zip(
                map(itemgetter(2), writes),
                repeat(uri),
                map(itemgetter(0), writes),
                map(itemgetter(3), writes),
                map(itemgetter(4), writes),
                map(itemgetter(5), writes),
                strict=False,
            )
        )
        first, more = self._first, self._more
        batch = dict(zip(steps, stored, strict=True))
        if len(batch) == len(steps):
            if batch.keys().isdisjoint(first.keys()):  # views: iterates the smaller
                first.update(batch)
                self._note_new_steps(steps)
                return
            if batch.keys() <= first.keys():
                held = map(more.setdefault, steps, map(list, repeat((), len(steps))))
                deque(map(list.append, held, stored), maxlen=0)
                return
        for step, write in zip(steps, stored, strict=True):
            if step in first:
                more.setdefault(step, []).append(write)
            else:
                first[step] = write
                self._note_new_steps([step])

    def _note_new_steps(self, steps: list[int]) -> None:
        ascending = self._ascending
        if ascending is None or not steps:
            return
        if (not ascending or steps[0] > ascending[-1]) and steps == sorted(set(steps)):
            ascending += steps  # evaluators write steps in order: no re-sorting
        else:
            self._ascending = None

    def stored(self) -> Iterator[tuple[int, Stored]]:
        """Every event held, with its step (bundles taken apart)."""
        for step, write in self._first.items():
            for event in _events(write):
                yield step, event
        for step, writes in self._more.items():
            for write in writes:
                for event in _events(write):
                    yield step, event

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
            wall_time, uri, _, scalars, strings, _ = first
            return EvalResult(step, scalars, strings.get(CHECKPOINT_PATH_TAG), wall_time, uri)
        writes = self._writes(step)
        newest = writes[-1]
        return EvalResult(
            step, _merged_metrics(writes), _checkpoint_path(writes), newest[0], newest[1]
        )

    def _writes(self, step: int) -> list[Stored]:
        """Every event of a step written more than once, oldest first."""
        # Tuples compare in C; (wall time, uri, offset) differ between writes, so the
        # comparison never reaches the values.
        return sorted(
            event for write in [self._first[step], *self._more[step]] for event in _events(write)
        )

    def newest_first(self) -> Iterator[EvalResult]:
        """Results from the highest step down, built lazily."""
        for step in reversed(self._steps()):
            result = self.result(step)
            if result is not None:
                yield result

    def results(self) -> list[EvalResult]:
        """Every result, ascending by step."""
        steps = self._steps()
        held = list(map(self._first.__getitem__, steps))
        results = list(
            map(
                EvalResult,
                steps,
                map(itemgetter(3), held),
                map(methodcaller("get", CHECKPOINT_PATH_TAG), map(itemgetter(4), held)),
                map(itemgetter(0), held),
                map(itemgetter(1), held),
            )
        )
        if self._more:  # steps written more than once: merge them
            for index, step in enumerate(steps):
                if step in self._more:
                    results[index] = self.result(step)  # type: ignore[assignment]
        return results

    def metrics_by_step(self) -> dict[int, Mapping[str, float]]:
        """Every step's merged metrics, by step: all that is known, without the rest of
        each result."""
        steps = self._steps()
        metrics = dict(
            zip(steps, map(itemgetter(3), map(self._first.__getitem__, steps)), strict=True)
        )
        for step in self._more:
            metrics[step] = _merged_metrics(self._writes(step))
        return metrics

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


def _merged_metrics(writes: list[Stored]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    deque(map(metrics.update, map(itemgetter(3), writes)), maxlen=0)
    return metrics


def _checkpoint_path(writes: list[Stored]) -> str | None:
    for write in reversed(writes):
        if CHECKPOINT_PATH_TAG in write[4]:
            return write[4][CHECKPOINT_PATH_TAG]
    return None


def _events(write: Stored) -> list[Stored]:
    """The events a write stands for: itself, or a bundle's events."""
    _, uri, _, scalars, strings, parts = write
    if parts is None:
        return [write]
    tags, keys = parts
    return [
        (
            part_time,
            uri,
            part_offset,
            {tag: scalars[tag] for tag in scalar_tags},
            {tag: strings[tag] for tag in string_tags},
            None,
        )
        for (scalar_tags, string_tags), (part_time, part_offset) in zip(tags, keys, strict=True)
    ]
