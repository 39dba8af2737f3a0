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
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import google_crc32c

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
    result = ScanResult()
    size = len(buffer)
    pos = 0
    if resyncing:
        pos, intact = _resync(buffer, 0)
        _report_damage(result, base_offset, 0, pos, continues_previous=True)
        if not intact:
            return _stop_resyncing(result, base_offset, pos)
    records = result.records
    append = records.append
    unpack_header = _HEADER.unpack_from
    unpack_footer = _FOOTER.unpack_from
    crc32c = _crc32c
    while pos + HEADER_SIZE <= size:
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
