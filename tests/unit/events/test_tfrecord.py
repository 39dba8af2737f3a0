"""TFRecord framing: CRC checks, truncated tails, damaged records and resynchronisation."""

from __future__ import annotations

import struct

import google_crc32c
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.events.tfrecord import (
    FOOTER_SIZE,
    HEADER_SIZE,
    ScanResult,
    masked_crc32c,
    scan_records,
)

from .event_builders import frame

PAYLOADS = [b"first", b"", b"x" * 300, b"last record"]


def _file(payloads: list[bytes]) -> tuple[bytes, list[int]]:
    offsets, data = [], b""
    for payload in payloads:
        offsets.append(len(data))
        data += frame(payload)
    return data, offsets


def test_masked_crc_matches_a_record_written_by_tensorflow() -> None:
    # The first 12 bytes of an event file TensorFlow 2.21 wrote: a 62-byte record and the
    # masked CRC32C of its length (bytes d9 d2 40 e7).
    assert masked_crc32c(struct.pack("<Q", 62)) == 0xE740D2D9
    assert google_crc32c.value(b"123456789") == 0xE3069283  # the CRC32C check value


def test_intact_records_come_back_with_their_offsets() -> None:
    data, offsets = _file(PAYLOADS)
    scan = scan_records(data, base_offset=1000)
    assert scan.records == [(1000 + o, p) for o, p in zip(offsets, PAYLOADS, strict=True)]
    assert scan.damaged == []
    assert scan.end == 1000 + len(data)
    assert not scan.resyncing


def test_a_truncated_last_record_is_left_for_the_next_read_at_every_cut() -> None:
    data, offsets = _file(PAYLOADS)
    last = offsets[-1]
    for cut in range(last, len(data)):
        scan = scan_records(data[:cut])
        assert [p for _, p in scan.records] == PAYLOADS[:-1]
        assert scan.damaged == []
        assert scan.end == last


def test_a_wrong_data_crc_skips_exactly_that_record() -> None:
    data, offsets = _file(PAYLOADS)
    damaged = bytearray(data)
    damaged[offsets[2] + HEADER_SIZE + 5] ^= 0x01
    scan = scan_records(bytes(damaged))
    assert [p for _, p in scan.records] == [PAYLOADS[0], PAYLOADS[1], PAYLOADS[3]]
    assert len(scan.damaged) == 1
    region = scan.damaged[0]
    assert (region.offset, region.reason) == (offsets[2], "data CRC")
    assert region.length == HEADER_SIZE + len(PAYLOADS[2]) + FOOTER_SIZE


def test_a_wrong_length_resynchronises_on_the_next_intact_record() -> None:
    data, offsets = _file(PAYLOADS)
    damaged = bytearray(data)
    damaged[offsets[1] + 3] ^= 0xFF  # the length of record 1 (whose payload is empty)
    scan = scan_records(bytes(damaged))
    assert [p for _, p in scan.records] == [PAYLOADS[0], PAYLOADS[2], PAYLOADS[3]]
    assert [(r.offset, r.length, r.reason) for r in scan.damaged] == [
        (offsets[1], offsets[2] - offsets[1], "length CRC")
    ]
    assert scan.end == len(data)


def test_garbage_appended_is_reported_once_across_scans_and_records_after_it_are_found() -> None:
    data, _ = _file(PAYLOADS)
    garbage = bytes(range(256)) * 3
    first = scan_records(data + garbage)
    assert [p for _, p in first.records] == PAYLOADS
    assert first.resyncing
    assert len(first.damaged) == 1
    assert first.end == len(data + garbage) - HEADER_SIZE + 1  # a header may start later

    later = frame(b"written after the garbage")
    whole = data + garbage + later
    second = scan_records(whole[first.end :], first.end, resyncing=True)
    assert [p for _, p in second.records] == [b"written after the garbage"]
    assert all(region.continues_previous for region in second.damaged)
    assert second.end == len(whole)
    assert not second.resyncing


def test_a_zero_filled_tail_is_damage_not_a_crash() -> None:
    data, _ = _file(PAYLOADS)
    scan = scan_records(data + bytes(4096))
    assert [p for _, p in scan.records] == PAYLOADS
    assert scan.resyncing


def _scan_in_pieces(data: bytes, cuts: list[int]) -> ScanResult:
    """Scan as an incremental reader does: bytes arrive in pieces, state carried along."""
    total = ScanResult()
    pending, offset, resyncing = b"", 0, False
    for piece_end in [*sorted(cuts), len(data)]:
        buffer = pending + data[offset + len(pending) : piece_end]
        scan = scan_records(buffer, offset, resyncing=resyncing)
        total.records += scan.records
        total.damaged += scan.damaged
        pending = buffer[scan.end - offset :]
        offset, resyncing = scan.end, scan.resyncing
    total.end, total.resyncing = offset, resyncing
    return total


@given(
    payloads=st.lists(st.binary(max_size=80), min_size=1, max_size=8),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=3),
    cuts=st.lists(st.integers(min_value=0), max_size=4),
    garbage=st.binary(max_size=40),
)
def test_reading_in_pieces_equals_reading_at_once_and_never_crashes(
    payloads: list[bytes], flips: list[tuple[int, int]], cuts: list[int], garbage: bytes
) -> None:
    data, offsets = _file(payloads)
    damaged = bytearray(data + garbage)
    for position, mask in flips:
        damaged[position % len(damaged)] ^= mask
    whole = bytes(damaged)
    at_once = scan_records(whole)
    pieces = _scan_in_pieces(whole, [c % (len(whole) + 1) for c in cuts])
    assert pieces.records == at_once.records
    assert pieces.end == at_once.end
    new_damage = [r for r in pieces.damaged if not r.continues_previous]
    assert len(new_damage) == len(at_once.damaged)
    # Every record found is a record of the file at its own offset, and every record no
    # flipped byte touched is found (a random match would need two CRCs to collide).
    written = dict(zip(offsets, payloads, strict=True))
    found = dict(at_once.records)
    assert all(written.get(offset) == payload for offset, payload in found.items())
    touched = {position % len(damaged) for position, _ in flips}
    for offset, payload in written.items():
        size = HEADER_SIZE + len(payload) + FOOTER_SIZE
        if not touched & set(range(offset, offset + size)):
            assert found.get(offset) == payload
