"""Incremental reading of one event file through the Storage protocol.

The reader remembers the offset after the last complete record, so reading a growing file
again fetches only the new bytes (a ranged read on GCS). Reads go in bounded chunks so a
large file never has to fit in memory twice. Records below `min_step` are framed and
dropped without being decoded (see `event_runs`).

Before using new bytes the reader checks that the file still starts as it did: the few
bytes just before its offset are fetched with the new ones and compared with what it read
there last time. A file replaced by another (not just appended to) fails that check, and
`FileReplacedError` tells the caller to read everything again. The listing's size and
modification time say whether there is anything to read at all, so a file that did not
change costs no request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_tf_export.events.event_runs import Write, run_events
from airflow_tf_export.events.summaries import UndecodableEventError, decode_values, read_stamp
from airflow_tf_export.events.tfrecord import split_records
from airflow_tf_export.storage.base import FileInfo, Storage

log = logging.getLogger(__name__)

CHUNK_SIZE = 8 * 1024 * 1024
TAIL_SIZE = 8
"""Bytes before the offset kept to recognise the same file on the next read."""


class FileReplacedError(Exception):
    """The bytes already read from an event file changed: it was replaced."""


@dataclass
class ReadStats:
    """What reads cost and found: bytes fetched, records framed, damage skipped."""

    bytes_read: int = 0
    records: int = 0
    damaged_records: int = 0
    undecodable_records: int = 0

    def add(self, other: ReadStats) -> None:
        """Accumulate another read's numbers into this one."""
        self.bytes_read += other.bytes_read
        self.records += other.records
        self.damaged_records += other.damaged_records
        self.undecodable_records += other.undecodable_records


class EventFileReader:
    """Reads the summary events appended to one event file since the previous read."""

    def __init__(self, storage: Storage, uri: str, *, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of bytes, got {chunk_size}")
        self.storage = storage
        self.uri = uri
        self.chunk_size = chunk_size
        self.offset = 0
        self._resyncing = False
        self._tail = b""
        self._seen: tuple[int, float | None] | None = None

    def state(self) -> dict[str, Any]:
        """What resuming this reader elsewhere needs (JSON-able)."""
        size, mtime = self._seen if self._seen is not None else (None, None)
        return {
            "uri": self.uri,
            "offset": self.offset,
            "resyncing": self._resyncing,
            "tail": self._tail.hex(),
            "size": size,
            "mtime": mtime,
        }

    @classmethod
    def from_state(
        cls, storage: Storage, state: dict[str, Any], chunk_size: int
    ) -> EventFileReader:
        """The reader `state()` described; ValueError when `state` is not one."""
        reader = cls(storage, str(state["uri"]), chunk_size=chunk_size)
        offset, size, mtime = state["offset"], state["size"], state["mtime"]
        tail = bytes.fromhex(state["tail"])
        if not isinstance(offset, int) or offset < 0 or len(tail) > min(offset, TAIL_SIZE):
            raise ValueError(f"bad event file state {state!r}")
        reader.offset, reader._tail = offset, tail
        reader._resyncing = bool(state["resyncing"])
        if size is not None:
            reader._seen = (int(size), None if mtime is None else float(mtime))
        return reader

    def read_new(
        self, info: FileInfo, min_step: Callable[[], int | None], stats: ReadStats
    ) -> Iterator[list[Write]]:
        """The new summary events at steps >= `min_step()` (asked again as reading goes: a
        wait may raise it), in lists of at most a run's events.

        A record cut off at the end of the file is left for the next read; damaged and
        undecodable records are skipped, logged and counted in `stats`.
        """
        if info.size < self.offset:
            raise FileReplacedError(self.uri)
        if self._seen == (info.size, info.mtime) or (
            info.size == self.offset and info.mtime is None
        ):
            return
        pending = b""
        fetched_to = self.offset
        check = self._tail
        while fetched_to < info.size or check:
            chunk_end = min(info.size, fetched_to + self.chunk_size)
            data = self.storage.read_bytes(self.uri, fetched_to - len(check), chunk_end)
            stats.bytes_read += len(data)
            if check:
                if data[: len(check)] != check:
                    raise FileReplacedError(self.uri)
                data, check = data[len(check) :], b""
            if not data:
                break
            fetched_to += len(data)
            buffer = pending + data if pending else data
            yield from self._scan(buffer, min_step, stats)
            pending = buffer[self.offset - (fetched_to - len(buffer)) :]
        self._seen = (info.size, info.mtime)

    def _scan(
        self, buffer: bytes, min_step: Callable[[], int | None], stats: ReadStats
    ) -> Iterator[list[Write]]:
        base = self.offset
        framing = split_records(buffer, base, resyncing=self._resyncing)
        for region in framing.damaged:
            log.warning(
                "skipped %d damaged bytes at offset %d of %s (%s)",
                region.length,
                region.offset,
                self.uri,
                region.reason,
            )
            if not region.continues_previous:
                stats.damaged_records += 1

        def damaged(offset: int, reason: str) -> None:
            log.warning("skipped the record at offset %d of %s (%s)", offset, self.uri, reason)
            if reason == "data CRC":
                stats.damaged_records += 1
            else:
                stats.undecodable_records += 1

        for run in framing.runs:
            stats.records += run.count * len(run.records)
            yield from run_events(buffer, base, run, min_step(), damaged)
        stats.records += len(framing.records)
        writes: list[Write] = []
        floor = min_step()
        for offset, record in framing.records:
            try:
                stamp = read_stamp(record)
                if stamp is None or (floor is not None and stamp[0] < floor):
                    continue
                values = decode_values(record)
            except UndecodableEventError as error:
                damaged(offset, str(error))
                continue
            writes.append((offset, stamp[0], stamp[1], values.scalars, values.strings, None))
        self.offset = framing.end
        self._resyncing = framing.resyncing
        consumed = framing.end - base
        if consumed >= TAIL_SIZE:
            self._tail = buffer[consumed - TAIL_SIZE : consumed]
        else:
            self._tail = (self._tail + buffer[:consumed])[-TAIL_SIZE:]
        if writes:
            yield writes
