"""The eval results of a model directory: every event file matching a pattern, merged by step.

`EvalDirReader` keeps one incremental reader per event file and a merge of everything read,
so `refresh()` costs one listing, one size lookup per file and the new bytes only. An event
file that shrank or disappeared was replaced, so everything is read again from the start.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.events.event_file import CHUNK_SIZE, EventFileReader, ReadStats
from airflow_tf_export.events.merge import StepMerger
from airflow_tf_export.storage.base import Storage, StorageNotFoundError

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
    """Reads and merges the eval event files of one model directory, incrementally."""

    def __init__(
        self,
        storage: Storage,
        model_dir: str,
        event_file_pattern: str = DEFAULT_EVENT_FILE_PATTERN,
        *,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.storage = storage
        self.pattern_uri = storage.join(model_dir, validate_event_file_pattern(event_file_pattern))
        self.chunk_size = chunk_size
        self.totals = ReadStats()
        self._files: dict[str, EventFileReader] = {}
        self._merger = StepMerger()

    def refresh(self) -> ReadStats:
        """Read what was appended since the last refresh; return what this refresh did."""
        with _cyclic_gc_paused():
            return self._refresh()

    def _refresh(self) -> ReadStats:
        sizes = self._current_sizes()
        if any(
            uri not in sizes or sizes[uri] < reader.offset for uri, reader in self._files.items()
        ):
            self._files.clear()
            self._merger.clear()
        stats = ReadStats()
        for uri, size in sizes.items():
            reader = self._files.get(uri)
            if reader is None:
                reader = self._files[uri] = EventFileReader(
                    self.storage, uri, chunk_size=self.chunk_size
                )
            for offset, step, wall_time, event in reader.read_new(size, stats):
                self._merger.add(uri, offset, step, wall_time, event)
        self.totals.add(stats)
        return stats

    def event_files(self) -> list[str]:
        """URIs of the event files read so far, sorted."""
        return sorted(self._files)

    @property
    def skipped_records(self) -> int:
        """Damaged or undecodable records skipped so far (each logged when skipped)."""
        totals = self.totals
        return totals.damaged_records + totals.undecodable_records + self._merger.undecodable_events

    def result(self, step: int) -> EvalResult:
        """The merged result of `step`; KeyError when there is none."""
        result = self._merger.result(step)
        if result is None:
            raise KeyError(step)
        return result

    def steps(self) -> list[int]:
        """Steps that have a result, ascending (decodes every event: prefer `newest_first`)."""
        return [result.step for result in self._merger.results()]

    def results(self) -> list[EvalResult]:
        """Every result, ascending by step."""
        return self._merger.results()

    def newest_first(self) -> Iterator[EvalResult]:
        """Results from the highest step down, built lazily."""
        return self._merger.newest_first()

    def _current_sizes(self) -> dict[str, int]:
        sizes = {}
        for uri in self.storage.glob(self.pattern_uri):
            try:
                sizes[uri] = self.storage.size(uri)
            except StorageNotFoundError:
                continue  # deleted between listing and lookup: treated as absent
        return sizes
