"""Byte columns: the bytes at one position of every record of a run (strided slices), and
what is read from them in C, without a Python step per record.

Each operation covers at most a run's records (`tfrecord.MAX_RUN`), so none holds the GIL
for long.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import repeat
from operator import add, eq

import google_crc32c

_crc32c = google_crc32c.value
_MASK_DELTA = 0xA282EAD8


def column(buffer: bytes, start: int, stride: int, count: int) -> bytes:
    """Bytes at `start`, `start + stride`, ... (`count` of them)."""
    return buffer[start : start + (count - 1) * stride + 1 : stride]


def leading_matches(buffer: bytes, start: int, stride: int, count: int, value: int) -> int:
    """How many of the first `count` bytes of a column equal `value`, before the first other."""
    values = column(buffer, start, stride, count)
    single = bytes((value,))
    if values == single * count:  # the usual answer, by one memcmp
        return count
    return count - len(values.lstrip(single))


def gather(buffer: bytes, start: int, stride: int, count: int, width: int) -> bytearray:
    """`width` bytes from each record, back to back."""
    out = bytearray(width * count)
    for index in range(width):
        out[index::width] = column(buffer, start + index, stride, count)
    return out


def crc_checks(buffer: bytes, starts: Sequence[int], length: int) -> list[bool]:
    """Whether each record's data (`length` bytes from each start) matches its footer CRC."""
    count = len(starts)
    if not count:
        return []
    ends = list(map(add, starts, repeat(length)))
    crcs = struct.pack(
        f"<{count}I", *map(_crc32c, map(buffer.__getitem__, map(slice, starts, ends)))
    )
    if isinstance(starts, range):
        footers = bytes(gather(buffer, ends[0], starts.step, count, 4))
    else:
        footers = b"".join(map(buffer.__getitem__, map(slice, ends, map(add, ends, repeat(4)))))
    if masked(crcs, count) == footers:
        return [True] * count
    computed = struct.unpack(f"<{count}I", masked(crcs, count))
    stored = struct.unpack(f"<{count}I", footers)
    return list(map(eq, computed, stored))


def masked(crcs: bytes, count: int) -> bytes:
    """TFRecord's mask of `count` little-endian CRCs, all at once: every 32-bit lane of one
    big integer is rotated right by 15 and has the mask delta added, carries kept in lane."""
    lanes = int.from_bytes(crcs, "little")
    ones = int.from_bytes(b"\x01\x00\x00\x00" * count, "little")
    rotated = ((lanes >> 15) & (0x0001FFFF * ones)) | ((lanes << 17) & (0xFFFE0000 * ones))
    delta = _MASK_DELTA * ones
    low = 0x7FFFFFFF * ones
    high = 0x80000000 * ones
    masked = ((rotated & low) + (delta & low)) ^ ((rotated ^ delta) & high)
    return masked.to_bytes(4 * count, "little")
