"""Incremental reading of one event file through the Storage protocol.

The reader remembers the offset after the last complete record, so reading a growing file
again fetches only the new bytes (a ranged read on GCS). Reads go in bounded chunks so a
large file never has to fit in memory twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from airflow_tf_export.events.summaries import UndecodableEventError, read_stamp
from airflow_tf_export.events.tfrecord import scan_records
from airflow_tf_export.storage.base import Storage

log = logging.getLogger(__name__)

CHUNK_SIZE = 8 * 1024 * 1024


@dataclass
class ReadStats:
    """What reads cost and found: bytes fetched, intact records, damage skipped."""

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
    """Reads the records of one event file that were appended since the previous read."""

    def __init__(self, storage: Storage, uri: str, *, chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of bytes, got {chunk_size}")
        self.storage = storage
        self.uri = uri
        self.chunk_size = chunk_size
        self.offset = 0
        self._resyncing = False

    def read_new(self, size: int, stats: ReadStats) -> Iterator[tuple[int, int, float, bytes]]:
        """(record offset, step, wall_time, serialized event) of each new summary event, up
        to byte `size` of the file.

        A record cut off at `size` is left for the next read; damaged and undecodable
        records are skipped, logged and counted in `stats`.
        """
        pending = b""
        fetched_to = self.offset
        while fetched_to < size:
            chunk_end = min(size, fetched_to + self.chunk_size)
            data = self.storage.read_bytes(self.uri, fetched_to, chunk_end)
            if not data:
                break
            stats.bytes_read += len(data)
            fetched_to += len(data)
            buffer = pending + data if pending else data
            base = self.offset
            scan = scan_records(buffer, base, resyncing=self._resyncing)
            for region in scan.damaged:
                log.warning(
                    "skipped %d damaged bytes at offset %d of %s (%s)",
                    region.length,
                    region.offset,
                    self.uri,
                    region.reason,
                )
                if not region.continues_previous:
                    stats.damaged_records += 1
            self.offset = scan.end
            self._resyncing = scan.resyncing
            pending = buffer[scan.end - base :]
            stats.records += len(scan.records)
            for offset, record in scan.records:
                try:
                    stamp = read_stamp(record)
                except UndecodableEventError as error:
                    log.warning("skipped record at offset %d of %s: %s", offset, self.uri, error)
                    stats.undecodable_records += 1
                    continue
                if stamp is not None:
                    yield offset, stamp[0], stamp[1], record
