"""TFRecord framing: split a byte buffer into CRC-checked records, resynchronising after damage.

A record is `uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)`,
little-endian, the CRC32C masked as `((crc >> 15) | (crc << 17)) + 0xa282ead8`.

Damage handling, chosen so a reader never crashes and never loses a good record:
- Too few bytes for a header, or for the data and footer a valid header announces: the
  record is still being written. Scanning stops at its start, to be read once complete.
- Valid header, wrong data CRC: the length is trustworthy, so exactly that record is skipped.
- Wrong header CRC: the length cannot be trusted. The scanner then looks at every following
  byte offset for an intact record (header CRC and data CRC both match; a random match needs
  two CRCs to collide) and carries on from the first one. Without one, it stops at the first
  offset whose header CRC matches but whose data is not all there yet (a record still being
  written, or a chance match such as a record with an 8-byte payload, which looks like a
  header), else near the end of the buffer. It then reports `resyncing`: the next scan
  resumes the search from there, so that position is trusted only once its record is intact,
  and the damaged region is not counted twice.

Event files are very regular: an evaluator writes the same events at every step, so the
record headers (length and its CRC) repeat with a short period. `split_records` finds such
runs and frames them with a few strided byte comparisons instead of a Python step per
record (`RecordRun`); everything else goes through the record-by-record scan above. A run's
framing is exact: every header in it is byte-identical to one whose CRC was checked, and the
headers decide where each record starts. The data CRCs of a run's records are checked by
whoever uses the records (`event_runs`), so records nobody needs are not checked at all.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import google_crc32c

from airflow_tf_export.events.columns import leading_matches

HEADER_SIZE = 12
FOOTER_SIZE = 4
_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")
_crc32c = google_crc32c.value


def masked_crc32c(data: bytes) -> int:
    """The CRC32C of `data`, masked as TFRecord files store it."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


Record = tuple[int, bytes]
"""One intact record: (absolute byte offset, payload). A plain tuple: cheapest to make."""


@dataclass(frozen=True)
class DamagedRegion:
    """Bytes skipped as damage: absolute start offset, length and why.

    `continues_previous` marks the first region of a scan that carries on a damaged region an
    earlier scan already reported (so it is not a new piece of damage).
    """

    offset: int
    length: int
    reason: str
    continues_previous: bool = False


@dataclass
class ScanResult:
    """What one scan found.

    `end` is the absolute offset where the next scan must start (everything before it is
    consumed); `resyncing` says scanning stopped inside a damaged region, so the next scan
    must go on searching for an intact record from `end`.
    """

    records: list[Record] = field(default_factory=list)
    damaged: list[DamagedRegion] = field(default_factory=list)
    end: int = 0
    resyncing: bool = False


def scan_records(buffer: bytes, base_offset: int = 0, *, resyncing: bool = False) -> ScanResult:
    """Split `buffer` (file bytes starting at `base_offset`) into records.

    Pass the previous scan's `resyncing` when continuing a file so a damaged region that
    spans two scans is reported once.
    """
    return _scan(buffer, base_offset, 0, len(buffer), resyncing=resyncing)


def _scan(
    buffer: bytes, base_offset: int, pos: int, max_records: int, *, resyncing: bool
) -> ScanResult:
    """`scan_records` from index `pos`, stopping after `max_records` records (intact or not)."""
    result = ScanResult()
    size = len(buffer)
    if resyncing:
        start = pos
        pos, intact = _resync(buffer, start)
        _report_damage(result, base_offset, start, pos, continues_previous=True)
        if not intact:
            return _stop_resyncing(result, base_offset, pos)
    records = result.records
    append = records.append
    unpack_header = _HEADER.unpack_from
    unpack_footer = _FOOTER.unpack_from
    crc32c = _crc32c
    remaining = max_records
    while pos + HEADER_SIZE <= size and remaining:
        remaining -= 1
        length, length_crc = unpack_header(buffer, pos)
        crc = crc32c(buffer[pos : pos + 8])
        if (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF != length_crc:
            found, intact = _resync(buffer, pos + 1)
            _report_damage(result, base_offset, pos, found, continues_previous=False)
            if not intact:
                return _stop_resyncing(result, base_offset, found)
            pos = found
            continue
        data_end = pos + HEADER_SIZE + length
        if data_end + FOOTER_SIZE > size:
            break
        data = buffer[pos + HEADER_SIZE : data_end]
        crc = crc32c(data)
        if (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF == unpack_footer(
            buffer, data_end
        )[0]:
            append((base_offset + pos, data))
        else:
            region = DamagedRegion(base_offset + pos, data_end + FOOTER_SIZE - pos, "data CRC")
            result.damaged.append(region)
        pos = data_end + FOOTER_SIZE
    result.end = base_offset + pos
    return result


@dataclass(frozen=True)
class RecordRun:
    """`count` back-to-back repetitions, from buffer index `start`, of a period of `period`
    bytes whose records have byte-identical headers in every repetition.

    `records` holds, for each record of a period, where its data starts within the period
    and its length. The data CRCs are not checked yet.
    """

    start: int
    period: int
    records: tuple[tuple[int, int], ...]
    count: int

    @property
    def end(self) -> int:
        """Buffer index just after the run."""
        return self.start + self.period * self.count


@dataclass
class Framing:
    """`split_records`' answer: single records (CRC-checked, as `scan_records` gives them)
    and runs (framed, data CRCs unchecked), damage, and where the next read starts."""

    records: list[Record] = field(default_factory=list)
    runs: list[RecordRun] = field(default_factory=list)
    damaged: list[DamagedRegion] = field(default_factory=list)
    end: int = 0
    resyncing: bool = False


MAX_PERIOD = 32
"""Longest period of records looked for (a TF2 evaluator writes one event per metric)."""
MIN_RUN = 16
"""Fewer repetitions than this are framed record by record: not worth the column work."""
MAX_RUN = 16384
"""Longer runs are cut: each column operation runs in C without letting other threads in
(a triggerer's event loop among them), so its length is kept to a few milliseconds."""
_FIRST_SCAN = 8


def split_records(buffer: bytes, base_offset: int = 0, *, resyncing: bool = False) -> Framing:
    """Frame `buffer` like `scan_records`, handing back regular stretches as `RecordRun`s.

    Between runs, records are scanned one by one in batches that double while no run is
    found, so an irregular file costs little more than `scan_records`.
    """
    framing = Framing()
    size = len(buffer)
    pos, batch = 0, _FIRST_SCAN
    while True:
        run = None if resyncing else find_run(buffer, pos)
        if run is not None:
            framing.runs.append(run)
            pos, batch = run.end, _FIRST_SCAN
            continue
        scan = _scan(buffer, base_offset, pos, batch, resyncing=resyncing)
        framing.records += scan.records
        framing.damaged += scan.damaged
        resyncing = scan.resyncing
        end = scan.end - base_offset
        if end == pos or resyncing or end + HEADER_SIZE > size:
            framing.end, framing.resyncing = scan.end, resyncing
            return framing
        pos, batch = end, min(batch * 2, 4096)


def find_run(buffer: bytes, pos: int) -> RecordRun | None:
    """The run of periodic records starting at index `pos`, if there is a long enough one.

    The period is the smallest number of records k (up to `MAX_PERIOD`) whose headers
    repeat once; strided byte columns then tell how many times they repeat.
    """
    headers: list[bytes] = []
    spans: list[tuple[int, int]] = []
    size = len(buffer)
    at = pos
    period = 0
    while len(headers) < 2 * MAX_PERIOD:
        if at + HEADER_SIZE > size:
            return None
        header = buffer[at : at + HEADER_SIZE]
        length, length_crc = _HEADER.unpack(header)
        if masked_crc32c(header[:8]) != length_crc or at + HEADER_SIZE + length > size:
            return None
        headers.append(header)
        spans.append((at - pos + HEADER_SIZE, length))
        at += HEADER_SIZE + length + FOOTER_SIZE
        half = len(headers) // 2
        if len(headers) % 2 == 0 and headers[:half] == headers[half:]:
            period = half
            break
        if len(headers) == MAX_PERIOD + 1 and headers[0] not in headers[1:]:
            return None  # no period: the first header must recur within MAX_PERIOD records
    if not period:
        return None
    period_bytes = spans[period][0] - HEADER_SIZE
    count = min((size - pos) // period_bytes, MAX_RUN)
    for (data_start, _), header in zip(spans[:period], headers, strict=False):
        start = pos + data_start - HEADER_SIZE
        for index in range(HEADER_SIZE):
            count = leading_matches(buffer, start + index, period_bytes, count, header[index])
            if count < MIN_RUN:
                return None
    return RecordRun(pos, period_bytes, tuple(spans[:period]), count)


def _resync(buffer: bytes, start: int) -> tuple[int, bool]:
    """Where to resume after damage: (offset of the first intact record, True), else (offset
    of the first header whose record is incomplete, False), else (where a header could still
    start once more bytes arrive, False)."""
    size = len(buffer)
    incomplete = None
    for pos in range(start, size - HEADER_SIZE + 1):
        length, length_crc = _HEADER.unpack_from(buffer, pos)
        if masked_crc32c(buffer[pos : pos + 8]) != length_crc:
            continue
        data_end = pos + HEADER_SIZE + length
        if data_end + FOOTER_SIZE > size:
            if incomplete is None:
                incomplete = pos
            continue
        data_crc = _FOOTER.unpack_from(buffer, data_end)[0]
        if masked_crc32c(buffer[pos + HEADER_SIZE : data_end]) == data_crc:
            return pos, True
    if incomplete is not None:
        return incomplete, False
    return max(size - HEADER_SIZE + 1, start), False


def _report_damage(
    result: ScanResult, base_offset: int, start: int, end: int, *, continues_previous: bool
) -> None:
    if end > start:
        result.damaged.append(
            DamagedRegion(base_offset + start, end - start, "length CRC", continues_previous)
        )


def _stop_resyncing(result: ScanResult, base_offset: int, resume: int) -> ScanResult:
    result.end = base_offset + resume
    result.resyncing = True
    return result
