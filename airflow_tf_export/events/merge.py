"""Merge the events of one or more event files into one eval result per step.

An eval directory can hold several event files: each evaluator (re)start opens a new one and
may evaluate a step again. Values are merged per (step, tag); when two writes collide the
later one wins, "later" meaning the greater event `wall_time`, then the event file URI (event
file names start with their creation time, so they sort by age), then the record offset.
The merge is order-independent: reading files in any order, all at once or in increments,
gives the same results.

Events are kept serialized and decoded only when a step's result is asked for: reading a
file then costs little more than checking its CRCs, and a sensor looking for the newest
result decodes a handful of events, not all of them. Events larger than `LAZY_EVENT_BYTES`
(images, audio, big histograms) are decoded at once and only their usable values kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.events.summaries import EventValues, UndecodableEventError, decode_values

log = logging.getLogger(__name__)

CHECKPOINT_PATH_TAG = "checkpoint_path"
"""The string summary Estimator writes after each evaluation: the checkpoint evaluated."""

LAZY_EVENT_BYTES = 64 * 1024

# (wall_time, event file URI, record offset, serialized event or its decoded values);
# the first three decide which write is later.
_Write = tuple[float, str, int, bytes | EventValues]


class StepMerger:
    """Accumulates events; gives the merged eval result of each step."""

    def __init__(self) -> None:
        # The first write of each step, and the rarer later ones: one object per event keeps
        # the garbage collector's work (and memory) small on 100k-evaluation files.
        self._first: dict[int, _Write] = {}
        self._more: dict[int, list[_Write]] = {}
        self._ascending: list[int] | None = []  # steps in order; None when it must be sorted
        self._undecodable: set[tuple[str, int]] = set()

    @property
    def undecodable_events(self) -> int:
        """Events that passed their CRC check but could not be decoded (each counted once)."""
        return len(self._undecodable)

    def add(self, uri: str, offset: int, step: int, wall_time: float, event: bytes) -> None:
        """Keep the serialized summary event found at `offset` of the event file `uri`."""
        payload: bytes | EventValues = event
        if len(event) > LAZY_EVENT_BYTES:
            values = self._decode(uri, offset, event)
            if values is None or not _usable(values):
                return
            payload = values
        write = (wall_time, uri, offset, payload)
        if step not in self._first:
            self._first[step] = write
            ascending = self._ascending
            if ascending is not None and (not ascending or step > ascending[-1]):
                ascending.append(step)  # evaluators write steps in order: no re-sorting
            else:
                self._ascending = None
        else:
            self._more.setdefault(step, []).append(write)

    def result(self, step: int) -> EvalResult | None:
        """The merged result of `step`; None when nothing usable was written at it."""
        first = self._first.get(step)
        if first is None:
            return None
        writes = [first]
        if step in self._more:
            writes = sorted(writes + self._more[step], key=lambda write: write[:3])
        metrics: dict[str, float] = {}
        checkpoint_path = None
        newest = None
        for write in writes:
            _, uri, offset, payload = write
            values = (
                payload if isinstance(payload, EventValues) else self._decode(uri, offset, payload)
            )
            if values is None or not _usable(values):
                continue
            metrics.update(values.scalars)
            checkpoint_path = values.strings.get(CHECKPOINT_PATH_TAG, checkpoint_path)
            newest = write
        if newest is None:
            return None
        return EvalResult(
            step=step,
            metrics=metrics,
            checkpoint_path=checkpoint_path,
            wall_time=newest[0],
            source=newest[1],
        )

    def newest_first(self) -> Iterator[EvalResult]:
        """Results from the highest step down, decoded lazily."""
        for step in reversed(self._steps()):
            result = self.result(step)
            if result is not None:
                yield result

    def results(self) -> list[EvalResult]:
        """Every result, ascending by step."""
        found = (self.result(step) for step in self._steps())
        return [result for result in found if result is not None]

    def clear(self) -> None:
        """Forget everything (an event file was replaced and must be read again)."""
        self._first.clear()
        self._more.clear()
        self._ascending = []
        self._undecodable.clear()

    def _steps(self) -> list[int]:
        if self._ascending is None:
            self._ascending = sorted(self._first)
        return self._ascending

    def _decode(self, uri: str, offset: int, event: bytes) -> EventValues | None:
        try:
            return decode_values(event)
        except UndecodableEventError as error:
            if (uri, offset) not in self._undecodable:
                log.warning("skipped the event at offset %d of %s: %s", offset, uri, error)
                self._undecodable.add((uri, offset))
            return None


def _usable(values: EventValues) -> bool:
    return bool(values.scalars) or CHECKPOINT_PATH_TAG in values.strings
