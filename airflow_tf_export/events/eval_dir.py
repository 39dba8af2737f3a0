"""The eval results of a model directory: every event file matching a pattern, merged by step.

`EvalDirReader` keeps one incremental reader per event file and a merge of everything read,
so `refresh()` costs one listing (which gives every file's size) and the new bytes only. An
event file that shrank, disappeared or changed its bytes already read was replaced, so
everything is read again from the start. `cursor()` and `resume()` carry a reader's state
across processes (a sensor in reschedule mode). `nearby_event_files` finds event files the
pattern missed, so a wait that finds none can say where they are.
"""

from __future__ import annotations

import fnmatch
import gc
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.eval_wait import EVENT_FILE_NAME_GLOB
from airflow_tf_export.events.event_file import (
    CHUNK_SIZE,
    EventFileReader,
    FileReplacedError,
    ReadStats,
)
from airflow_tf_export.events.event_runs import Write
from airflow_tf_export.events.merge import StepMerger
from airflow_tf_export.storage.base import Entry, Storage, StorageNotFoundError

log = logging.getLogger(__name__)

DEFAULT_EVENT_FILE_PATTERN = "eval/*.tfevents.*"
"""Where Estimator's evaluator wrote (`eval_<name>/` when the EvalSpec had a name)."""


def validate_event_file_pattern(pattern: object) -> str:
    """Return `pattern` if it is a relative glob inside the model dir; ValueError otherwise."""
    expected = f"a glob relative to model_dir such as {DEFAULT_EVENT_FILE_PATTERN!r}"
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"event_file_pattern must be {expected}, got {pattern!r}")
    if pattern.startswith("/") or "://" in pattern or "\\" in pattern:
        raise ValueError(f"event_file_pattern {pattern!r} is not relative; use {expected}")
    if any(segment in ("", ".", "..") for segment in pattern.split("/")):
        raise ValueError(
            f"event_file_pattern {pattern!r} has an empty, '.' or '..' segment; use {expected}"
        )
    return pattern


def nearby_event_files(storage: Storage, model_dir: str) -> dict[str, int] | None:
    """How many event files (by name) lie in `model_dir` and in each of its direct
    subdirectories, by directory ("" for `model_dir` itself); None when `model_dir` does
    not exist. One listing of `model_dir` and one of each subdirectory, whatever the
    event file pattern."""
    try:
        entries = storage.list_dir(model_dir)
    except StorageNotFoundError:
        return None
    found = {"": _count_event_files(entries)}
    for entry in entries:
        if entry.is_dir:
            try:
                found[entry.name] = _count_event_files(
                    storage.list_dir(storage.join(model_dir, entry.name))
                )
            except StorageNotFoundError:
                continue  # removed since model_dir was listed
    return {directory: count for directory, count in found.items() if count}


def _count_event_files(entries: list[Entry]) -> int:
    return sum(
        1
        for entry in entries
        if not entry.is_dir and fnmatch.fnmatchcase(entry.name, EVENT_FILE_NAME_GLOB)
    )


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Reading creates a tuple or two per record and no reference cycles, so the cyclic
    garbage collector finds nothing to free; yet on a large file it runs many times over the
    whole heap (huge once TensorFlow or Airflow is loaded): a quarter of the read time or
    more. It is paused while reading and resumed after (unless it was already off)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class EvalDirReader:
    """Reads and merges the eval event files of one model directory, incrementally.

    `min_step` keeps only steps at or above it (a wait has no use for the others): events
    below it are dropped unread, so reading costs little more than fetching the bytes, and
    memory holds only what is kept. Raising it later forgets what is below; lowering it
    reads everything again.
    """

    def __init__(
        self,
        storage: Storage,
        model_dir: str,
        event_file_pattern: str = DEFAULT_EVENT_FILE_PATTERN,
        *,
        chunk_size: int = CHUNK_SIZE,
        min_step: int | None = None,
    ) -> None:
        self.storage = storage
        self.pattern_uri = storage.join(model_dir, validate_event_file_pattern(event_file_pattern))
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of bytes, got {chunk_size}")
        self.chunk_size = chunk_size
        self.totals = ReadStats()
        self._files: dict[str, EventFileReader] = {}
        self._merger = StepMerger()
        self._min_step = min_step
        self._floor = min_step  # min_step, or higher once a wait is settled (`refresh`)

    @property
    def min_step(self) -> int | None:
        """The lowest step kept (None: every step)."""
        return self._min_step

    def set_min_step(self, step: int | None) -> None:
        """Keep steps >= `step` from now on (None: every step)."""
        if step == self._min_step:
            return
        lowered = step is None or (self._min_step is not None and step < self._min_step)
        self._min_step = step
        if lowered or (self._floor is not None and step is not None and step < self._floor):
            self._forget_everything()
        else:
            self._raise_floor(step)

    def refresh(self, settles: Callable[[EvalResult], bool] | None = None) -> ReadStats:
        """Read what was appended since the last refresh; return what this refresh did.

        `settles(result)` says a result ends the search for anything older (a wait whose
        target it meets): steps below the newest such result are then dropped as reading
        goes, so memory stays small even when every step is above `min_step`.
        """
        with _cyclic_gc_paused():
            try:
                return self._refresh(settles)
            except FileReplacedError as replaced:
                log.info("%s was replaced: reading every event file again", replaced)
                self._forget_everything()
                return self._refresh(settles)

    def _refresh(self, settles: Callable[[EvalResult], bool] | None) -> ReadStats:
        found = {info.uri: info for info in self.storage.glob_info(self.pattern_uri)}
        if any(uri not in found for uri in self._files):
            self._forget_everything()  # a file disappeared: its events must go too
        stats = ReadStats()
        try:
            for uri, info in found.items():
                reader = self._files.get(uri)
                if reader is None:
                    reader = self._files[uri] = EventFileReader(
                        self.storage, uri, chunk_size=self.chunk_size
                    )
                for writes in reader.read_new(info, self._current_floor, stats):
                    self._merger.add(uri, writes)
                    if settles is not None and writes:
                        self._settle(writes, settles)
        finally:
            self.totals.add(stats)
        return stats

    def _current_floor(self) -> int | None:
        return self._floor

    def _settle(self, writes: list[Write], settles: Callable[[EvalResult], bool]) -> None:
        floor = self._floor
        touched = {write[1] for write in writes if floor is None or write[1] >= floor}
        for step in sorted(touched, reverse=True):
            result = self._merger.result(step)
            if result is not None and settles(result):
                self._raise_floor(step)
                return

    def _raise_floor(self, step: int | None) -> None:
        if step is not None and (self._floor is None or step > self._floor):
            self._floor = step
            self._merger.drop_below(step)

    def _forget_everything(self) -> None:
        self._files.clear()
        self._merger.clear()
        self._floor = self._min_step

    def event_files(self) -> list[str]:
        """URIs of the event files read so far, sorted."""
        return sorted(self._files)

    @property
    def skipped_records(self) -> int:
        """Damaged or undecodable records skipped so far (each logged when skipped)."""
        return self.totals.damaged_records + self.totals.undecodable_records

    @property
    def held_writes(self) -> int:
        """How many events are held in memory (the kept ones, merged per step on demand)."""
        return len(self._merger)

    def result(self, step: int) -> EvalResult:
        """The merged result of `step`; KeyError when there is none."""
        result = self._merger.result(step)
        if result is None:
            raise KeyError(step)
        return result

    def steps(self) -> list[int]:
        """Steps that have a result, ascending."""
        return self._merger.steps()

    def results(self) -> list[EvalResult]:
        """Every result, ascending by step."""
        return self._merger.results()

    def metrics_by_step(self) -> dict[int, Mapping[str, float]]:
        """Every step's merged metrics, by step (the metrics of `results()`, sooner). The
        mappings are the reader's own, as in the results: read them, do not change them."""
        return self._merger.metrics_by_step()

    def newest_first(self) -> Iterator[EvalResult]:
        """Results from the highest step down, built lazily."""
        return self._merger.newest_first()

    def cursor(self) -> dict[str, Any] | None:
        """The reader's state as a small JSON-able dict, to resume it in another process
        (`resume`); None when it holds more than `MAX_CURSOR_WRITES` events."""
        if len(self._merger) > MAX_CURSOR_WRITES:
            return None
        writes = [
            [step, wall_time, uri, offset, _encode(scalars), dict(strings)]
            for step, (wall_time, uri, offset, scalars, strings, _) in self._merger.stored()
        ]
        if len(writes) > MAX_CURSOR_WRITES:
            return None
        return {
            "version": CURSOR_VERSION,
            "pattern_uri": self.pattern_uri,
            "min_step": self._floor,
            "files": [reader.state() for reader in self._files.values()],
            "writes": writes,
        }

    def resume(self, cursor: object) -> bool:
        """Take up where the reader that made `cursor` stopped, if it read the same files;
        else keep this reader as it is. Returns whether it resumed.

        The reader then keeps the cursor's `min_step` (a lower one set later reads
        everything again, as always). A file replaced or truncated since is noticed at the
        next `refresh` (its size, or the bytes before the offset, differ) and everything is
        read again, as for a reader that never stopped.
        """
        if not isinstance(cursor, dict) or cursor.get("version") != CURSOR_VERSION:
            return False
        floor = cursor.get("min_step")
        if cursor.get("pattern_uri") != self.pattern_uri or not (
            floor is None or type(floor) is int
        ):
            return False
        try:
            files = {
                state["uri"]: EventFileReader.from_state(self.storage, state, self.chunk_size)
                for state in cursor["files"]
            }
            merger = StepMerger()
            for step, wall_time, uri, offset, scalars, strings in cursor["writes"]:
                merger.add(
                    uri,
                    [(int(offset), int(step), float(wall_time), _decode(scalars), strings, None)],
                )
        except (KeyError, TypeError, ValueError, AttributeError):
            log.warning("ignoring a damaged eval reader cursor: %.200r", cursor)
            return False
        self._files, self._merger = files, merger
        self._min_step = self._floor = floor
        return True


MAX_CURSOR_WRITES = 1000
"""Above this many held events a cursor is not made (the next reader reads from scratch)."""
CURSOR_VERSION = 1


def _encode(scalars: Mapping[str, float]) -> dict[str, str]:
    return {tag: value.hex() for tag, value in scalars.items()}  # exact, NaN and inf too


def _decode(scalars: Mapping[str, str]) -> dict[str, float]:
    return {str(tag): float.fromhex(value) for tag, value in scalars.items()}
