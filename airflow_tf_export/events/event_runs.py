"""The summary events of a `RecordRun`, read column by column instead of record by record.

In a run, the records at the same place of every period (a "kind": say, the metrics event of
each evaluation) are nearly identical byte for byte: what changes is the wall time, the step
and the metric values, all at fixed byte positions. So:

- Steps: the first record's envelope says where the step is; a few strided byte columns
  confirm every record of the kind has that envelope (`wall_time`, `step`, `summary` and
  nothing else, the summary running to the record's end), and the step bytes of all records
  come out of a handful of columns. Records below the wanted step are dropped here, without
  their CRC being computed: their content is never used, so checking it would change
  nothing but the cost.
- Values, when many records are kept: a template. The first record is decoded by protobuf
  (`summaries.decode_values`, the one definition of what a value is) and walked by the wire
  reader below, which finds the bytes each value came from. Every other byte of every
  record is checked, column by column, to equal the template's; then each record parses
  exactly like the template except for those bytes, and its values are read from them.
  Records whose tags cycle within a kind (a TF2 writer's one-event-per-metric, all of one
  length) are split into that many templates.

Anything that does not fit (a template that fails a check, an unsupported encoding, a
damaged record) is decoded record by record with protobuf, so the columns only ever make
reading faster, never different. Kept records are always CRC-checked before use.
"""

from __future__ import annotations

import logging
import struct
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from operator import add, and_, eq, itemgetter, lshift, or_, rshift
from types import MappingProxyType
from typing import Any, NamedTuple

import google_crc32c

from airflow_tf_export.events import protos
from airflow_tf_export.events.summaries import (
    UndecodableEventError,
    decode_event,
    decode_values,
)
from airflow_tf_export.events.tfrecord import (
    HEADER_SIZE,
    MAX_PERIOD,
    RecordRun,
    column,
    leading_matches,
)

log = logging.getLogger(__name__)
_crc32c = google_crc32c.value

TEMPLATE_MIN_RECORDS = 64
"""Fewer kept records than this are decoded one by one (a template costs a few columns per
byte of the record, whatever the number of records)."""

Write = tuple[int, int, float, Mapping[str, float], Mapping[str, str]]
"""(record offset in the file, step, wall time, scalars, strings) of one kept summary event."""

Indices = range | list[int]
"""Records of a kind, by their index in it: a range when they follow each other."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_LOW_SEVEN = bytes(range(128)) * 2
_HIGH_BIT = bytes([0] * 128 + [1] * 128)
_MASK_DELTA = 0xA282EAD8
_FOOTER = struct.Struct("<I")
_ELEMENT_FORMATS = {
    protos.DT_FLOAT: "f",
    protos.DT_DOUBLE: "d",
    protos.DT_INT32: "i",
    protos.DT_INT16: "h",
    protos.DT_INT8: "b",
    protos.DT_UINT8: "B",
    protos.DT_INT64: "q",
}


class _Malformed(Exception):
    """The wire reader met something it does not read (or that is not protobuf)."""


class _Kind(NamedTuple):
    """The records at one place of every period: data at `first`, `first + stride`, ..."""

    first: int
    length: int
    stride: int
    number: int

    def starts(self, indices: Indices) -> Indices:
        if isinstance(indices, range):
            return range(
                self.first + indices.start * self.stride,
                self.first + indices.stop * self.stride,
                self.stride,
            )
        return [self.first + index * self.stride for index in indices]


def run_events(
    buffer: bytes,
    base_offset: int,
    run: RecordRun,
    min_step: int | None,
    on_damage: Callable[[int, str], None],
) -> list[Write]:
    """The summary events of `run` at steps >= `min_step` (all when None), CRC-checked.

    `on_damage(offset, reason)` hears of each kept record that fails its CRC or its decoding.
    """
    writes: list[Write] = []
    for data_offset, length in run.records:
        kind = _Kind(run.start + data_offset, length, run.period, run.count)
        writes += _kind_events(buffer, base_offset, kind, min_step, on_damage)
    return writes


def _kind_events(
    buffer: bytes,
    base_offset: int,
    kind: _Kind,
    min_step: int | None,
    on_damage: Callable[[int, str], None],
) -> list[Write]:
    envelope = _envelope(buffer[kind.first : kind.first + kind.length])
    if envelope is None or not envelope.fits(buffer, kind):
        every = kind.starts(range(kind.number))
        return _one_by_one(buffer, base_offset, every, kind.length, min_step, on_damage)
    kept = envelope.at_or_above(buffer, kind, min_step)
    if len(kept) < TEMPLATE_MIN_RECORDS:
        starts = kind.starts(kept)
        return _one_by_one(buffer, base_offset, starts, kind.length, min_step, on_damage)
    return _by_template(buffer, base_offset, kind, kept, envelope, on_damage)


def _one_by_one(
    buffer: bytes,
    base_offset: int,
    starts: Sequence[int],
    length: int,
    min_step: int | None,
    on_damage: Callable[[int, str], None],
) -> list[Write]:
    """Check and decode records with protobuf, one at a time."""
    writes: list[Write] = []
    for start, intact in zip(starts, _crc_checks(buffer, starts, length), strict=True):
        offset = base_offset + start - HEADER_SIZE
        if not intact:
            on_damage(offset, "data CRC")
            continue
        try:
            event = decode_event(buffer[start : start + length])
        except UndecodableEventError as error:
            on_damage(offset, str(error))
            continue
        if event is not None and (min_step is None or event.step >= min_step):
            values = event.values
            writes.append((offset, event.step, event.wall_time, values.scalars, values.strings))
    return writes


def _crc_checks(buffer: bytes, starts: Sequence[int], length: int) -> list[bool]:
    """Whether each record's data (`length` bytes from each start) matches its footer CRC."""
    ends = [start + length for start in starts]
    crcs = list(map(_crc32c, map(buffer.__getitem__, map(slice, starts, ends))))
    rotated = map(or_, map(rshift, crcs, repeat(15)), map(lshift, crcs, repeat(17)))
    masked = list(map(and_, map(add, rotated, repeat(_MASK_DELTA)), repeat(0xFFFFFFFF)))
    if isinstance(starts, range) and starts:
        footers = _gather(buffer, ends[0], starts.step, len(starts), 4)
        stored = list(struct.unpack(f"<{len(starts)}I", footers))
    else:
        stored = list(map(itemgetter(0), map(_FOOTER.unpack_from, repeat(buffer), ends)))
    if masked == stored:
        return [True] * len(starts)
    return list(map(eq, masked, stored))


# -- The wire format, read directly (only to find where things are) -------------------------


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 70:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise _Malformed("truncated varint")


class _Field(NamedTuple):
    number: int
    wire_type: int
    tag_start: int
    payload_start: int
    payload_end: int


def _fields(data: bytes, start: int, end: int) -> list[_Field]:
    fields = []
    pos = start
    while pos < end:
        key, payload = _varint(data, pos, end)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, payload_end = _varint(data, payload, end)
        elif wire_type == 1:
            payload_end = payload + 8
        elif wire_type == 2:
            size, payload = _varint(data, payload, end)
            payload_end = payload + size
        elif wire_type == 5:
            payload_end = payload + 4
        else:
            raise _Malformed(f"wire type {wire_type}")
        if payload_end > end:
            raise _Malformed("field runs past its message")
        fields.append(_Field(number, wire_type, pos, payload, payload_end))
        pos = payload_end
    return fields


class _Envelope:
    """Where a summary event's wall time and step are, and the bytes that must not change
    for another record to have them at the same place."""

    def __init__(
        self,
        wall_time: int | None,
        step: tuple[int, int] | None,
        fixed: tuple[tuple[int, int], ...],
    ) -> None:
        self.wall_time = wall_time
        self.step = step
        self._fixed = fixed  # (position, byte): field tags and the summary's length

    def fits(self, buffer: bytes, kind: _Kind) -> bool:
        """Whether every record of the kind has this envelope."""
        first, _, stride, count = kind
        for pos, byte in self._fixed:
            if leading_matches(buffer, first + pos, stride, count, byte) != count:
                return False
        if self.step is None:
            return True
        start, end = self.step
        for pos in range(start, end):  # a varint's continuation bits make its length
            more = column(buffer, first + pos, stride, count).translate(_HIGH_BIT)
            if more != (b"\x01" if pos < end - 1 else b"\x00") * count:
                return False
        return True

    def at_or_above(self, buffer: bytes, kind: _Kind, min_step: int | None) -> Indices:
        """Indices of the records at steps >= `min_step` (of a kind this envelope fits)."""
        if min_step is None or min_step <= 0:
            return range(kind.number)
        if self.step is None:
            return []
        start, end = self.step
        width = end - start
        if min_step >= 1 << (7 * width):
            return []
        # Each step as a big-endian number of its 7-bit groups: ordered like the steps.
        keys = struct.unpack(f">{kind.number}Q", self._groups(buffer, kind))
        floor = sum(((min_step >> (7 * g)) & 0x7F) << (8 * g) for g in range(width))
        if max(keys) < floor:
            return []
        if list(keys) == sorted(keys):
            return range(bisect_left(keys, floor), kind.number)
        return [index for index, key in enumerate(keys) if key >= floor]

    def steps(self, buffer: bytes, kind: _Kind) -> list[int]:
        """The step of every record of a kind this envelope fits."""
        if self.step is None:
            return [0] * kind.number
        start, end = self.step
        steps: list[int] = []
        for group, pos in enumerate(range(start, end)):
            low = column(buffer, kind.first + pos, kind.stride, kind.number).translate(_LOW_SEVEN)
            steps = (
                list(low)
                if not group
                else list(map(or_, steps, map(lshift, low, repeat(7 * group))))
            )
        return steps

    def _groups(self, buffer: bytes, kind: _Kind) -> bytearray:
        """The step's 7-bit groups, 8 bytes per record, most significant first."""
        assert self.step is not None
        start, end = self.step
        out = bytearray(8 * kind.number)
        for group, pos in enumerate(range(start, end)):
            low = column(buffer, kind.first + pos, kind.stride, kind.number).translate(_LOW_SEVEN)
            out[7 - group :: 8] = low
        return out


def _envelope(data: bytes) -> _Envelope | None:
    """The envelope of a record whose top-level fields are `wall_time` and `step` (each
    optional) then `summary` up to its end; None for any other record."""
    try:
        fields = _fields(data, 0, len(data))
    except _Malformed:
        return None
    numbers = [(f.number, f.wire_type) for f in fields]
    if not numbers or numbers[-1] != (5, 2) or numbers[:-1] not in _ENVELOPE_PREFIXES:
        return None
    if any(f.number == 2 and f.payload_end - f.payload_start > 8 for f in fields):
        return None  # a step of more than 56 bits (or negative): read one by one
    wall_time = step = None
    for f in fields:
        if f.number == 1:
            wall_time = f.payload_start
        elif f.number == 2:
            step = (f.payload_start, f.payload_end)
    fixed = tuple((pos, data[pos]) for f in fields for pos in range(f.tag_start, f.payload_start))
    return _Envelope(wall_time, step, fixed)


_ENVELOPE_PREFIXES: tuple[list[tuple[int, int]], ...] = ([], [(1, 1)], [(2, 0)], [(1, 1), (2, 0)])


# -- Templates ----------------------------------------------------------------------------


class _Slot(NamedTuple):
    """The bytes one value is read from, and how: a struct format letter or "s" (UTF-8)."""

    tag: str
    start: int
    end: int
    kind: str


class _Template(NamedTuple):
    """How every record like the template record decodes: its slots, the values that are
    the same in all of them, and the positions whose bytes must equal the template's."""

    slots: tuple[_Slot, ...]
    constant_scalars: dict[str, float]
    constant_strings: dict[str, str]
    fixed: tuple[int, ...]


def _template(data: bytes, envelope: _Envelope) -> _Template | None:
    """The template of a record, or None when its values cannot be read from fixed slots."""
    try:
        values = decode_values(data)
        candidates = _value_candidates(data)
    except (UndecodableEventError, _Malformed):
        return None
    tags = [tag for tag, _ in candidates]
    if len(set(tags)) != len(tags):
        return None
    found = dict(candidates)
    slots: list[_Slot] = []
    constant_scalars: dict[str, float] = {}
    constant_strings: dict[str, str] = {}
    wanted_values: list[tuple[str, float | str]] = [
        *values.scalars.items(),
        *values.strings.items(),
    ]
    for tag, wanted in wanted_values:
        options = found.get(tag)
        if options is None or len(options) > 1:
            return None
        if not options:
            if isinstance(wanted, str):
                constant_strings[tag] = wanted
            else:
                constant_scalars[tag] = wanted
            continue
        slot = options[0]._replace(tag=tag)
        if slot.kind == "varint" or not _same(_read_slot(data, slot), wanted):
            return None
        slots.append(slot)
    variable: set[int] = set()
    if envelope.wall_time is not None:
        variable.update(range(envelope.wall_time, envelope.wall_time + 8))
    if envelope.step is not None:
        variable.update(range(*envelope.step))
    for slot in slots:
        variable.update(range(slot.start, slot.end))
    fixed = tuple(pos for pos in range(len(data)) if pos not in variable)
    return _Template(tuple(slots), constant_scalars, constant_strings, fixed)


def _same(read: float | str, wanted: float | str) -> bool:
    if isinstance(read, str) or isinstance(wanted, str):
        return read == wanted
    return struct.pack("<d", read) == struct.pack("<d", wanted)  # NaN equals NaN here


def _read_slot(data: bytes, slot: _Slot) -> float | str:
    raw = data[slot.start : slot.end]
    if slot.kind == "s":
        return raw.decode("utf-8", errors="replace")
    return float(struct.unpack("<" + slot.kind, raw)[0])


def _value_candidates(data: bytes) -> list[tuple[str, list[_Slot]]]:
    """For each `Summary.Value`: its tag and every slot its number or string could be in."""
    summary = next(f for f in _fields(data, 0, len(data)) if f.number == 5)
    found = []
    for value in _fields(data, summary.payload_start, summary.payload_end):
        if value.number != 1 or value.wire_type != 2:
            continue
        tag = None
        slots: list[_Slot] = []
        for f in _fields(data, value.payload_start, value.payload_end):
            if f.number == 1 and f.wire_type == 2:
                if tag is not None:
                    raise _Malformed("two tags in one value")
                tag = data[f.payload_start : f.payload_end].decode("utf-8", errors="replace")
            elif f.number == 2 and f.wire_type == 5:
                slots.append(_Slot("", f.payload_start, f.payload_end, "f"))
            elif f.number == 8 and f.wire_type == 2:
                slots += _tensor_slots(data, f.payload_start, f.payload_end)
        found.append((tag or "", slots))
    return found


def _tensor_slots(data: bytes, start: int, end: int) -> list[_Slot]:
    fields = _fields(data, start, end)
    dtype = next((_varint(data, f.payload_start, end)[0] for f in fields if f.number == 1), 0)
    slots = []
    for f in fields:
        size = f.payload_end - f.payload_start
        kind = None
        if f.number == 4 and f.wire_type == 2:
            element = _ELEMENT_FORMATS.get(dtype)
            if element is not None and size == struct.calcsize("<" + element):
                kind = element
        elif f.number == 5 and size == 4:
            kind = "f"
        elif f.number == 6 and size == 8:
            kind = "d"
        elif f.number in (7, 10):
            kind = "varint"
        elif f.number == 8 and f.wire_type == 2:
            kind = "s"
        if kind is not None:
            slots.append(_Slot("", f.payload_start, f.payload_end, kind))
    return slots


def _by_template(
    buffer: bytes,
    base_offset: int,
    kind: _Kind,
    kept: Indices,
    envelope: _Envelope,
    on_damage: Callable[[int, str], None],
) -> list[Write]:
    """Decode the kept records of one kind through templates, one per cycle position."""
    cycle = _cycle(buffer, kind, envelope)
    steps = envelope.steps(buffer, kind)
    writes: list[Write] = []
    for phase in range(cycle):
        records = _Kind(
            kind.first + phase * kind.stride,
            kind.length,
            kind.stride * cycle,
            (kind.number - phase + cycle - 1) // cycle,
        )
        if isinstance(kept, range):
            lowest = (max(kept.start - phase, 0) + cycle - 1) // cycle
            positions: Indices = range(lowest, records.number)
        else:
            positions = [(index - phase) // cycle for index in kept if index % cycle == phase]
        if not positions:
            continue
        template = _checked_template(buffer, records, envelope)
        if template is None:
            writes += _one_by_one(
                buffer, base_offset, records.starts(positions), kind.length, None, on_damage
            )
            continue
        phase_steps = _select(steps[phase::cycle], positions)
        writes += _template_events(
            buffer, base_offset, template, records, positions, phase_steps, envelope, on_damage
        )
    return writes


def _cycle(buffer: bytes, kind: _Kind, envelope: _Envelope) -> int:
    """How many records of a kind pass before the values' layout repeats (tags that take
    turns in equally long records); 1 when it cannot be told."""
    shapes = []
    for index in range(min(kind.number, 2 * MAX_PERIOD)):
        start = kind.first + index * kind.stride
        data = buffer[start : start + kind.length]
        template = _template(data, envelope)
        if template is None:
            return 1
        shapes.append((bytes(data[pos] for pos in template.fixed), template.slots))
        half = len(shapes) // 2
        if len(shapes) % 2 == 0 and shapes[:half] == shapes[half:]:
            return half
    return 1


def _checked_template(buffer: bytes, records: _Kind, envelope: _Envelope) -> _Template | None:
    """The template of the first record, if every record's fixed bytes equal its bytes."""
    first, length, stride, count = records
    if not _crc_checks(buffer, [first], length)[0]:
        return None
    data = buffer[first : first + length]
    template = _template(data, envelope)
    if template is None:
        return None
    for pos in template.fixed:
        if leading_matches(buffer, first + pos, stride, count, data[pos]) != count:
            return None
    return template


def _select(values: Sequence[Any], positions: Indices) -> Sequence[Any]:
    if isinstance(positions, range):
        return values[positions.start : positions.stop]
    if len(positions) == 1:
        return [values[positions[0]]]
    return itemgetter(*positions)(values)


def _template_events(
    buffer: bytes,
    base_offset: int,
    template: _Template,
    records: _Kind,
    positions: Indices,
    steps: Sequence[int],
    envelope: _Envelope,
    on_damage: Callable[[int, str], None],
) -> list[Write]:
    """The kept records (`positions` among the template's records) decoded from columns."""
    if isinstance(positions, range):  # read the columns of the kept records only
        records = _Kind(
            records.first + positions.start * records.stride,
            records.length,
            records.stride,
            len(positions),
        )
        positions = range(len(positions))
    first, length = records.first, records.length
    starts = records.starts(positions)
    wall_times: Sequence[float] = (
        [0.0] * len(positions)
        if envelope.wall_time is None
        else _select(_numbers(buffer, first + envelope.wall_time, records, "d"), positions)
    )
    scalar_tags: list[str] = []
    scalar_columns: list[Sequence[float]] = []
    string_tags: list[str] = []
    string_columns: list[Sequence[str]] = []
    for slot in template.slots:
        if slot.kind == "s":
            string_tags.append(slot.tag)
            string_columns.append(
                _select(_strings(buffer, first + slot.start, records, slot), positions)
            )
        else:
            scalar_tags.append(slot.tag)
            scalar_columns.append(
                _select(_numbers(buffer, first + slot.start, records, slot.kind), positions)
            )
    for tag, number in template.constant_scalars.items():
        scalar_tags.append(tag)
        scalar_columns.append(repeat(number, len(positions)))  # type: ignore[arg-type]
    for tag, text in template.constant_strings.items():
        string_tags.append(tag)
        string_columns.append(repeat(text, len(positions)))  # type: ignore[arg-type]
    scalars = (
        map(dict, map(zip, repeat(scalar_tags), zip(*scalar_columns, strict=True)))
        if scalar_columns
        else repeat(_EMPTY)
    )
    strings = (
        map(dict, map(zip, repeat(string_tags), zip(*string_columns, strict=True)))
        if string_columns
        else repeat(_EMPTY)
    )
    offsets = map(add, starts, repeat(base_offset - HEADER_SIZE))
    writes: list[Write] = list(zip(offsets, steps, wall_times, scalars, strings, strict=False))
    checks = _crc_checks(buffer, starts, length)
    if all(checks):
        return writes
    for write, intact in zip(writes, checks, strict=True):
        if not intact:
            on_damage(write[0], "data CRC")
    return [write for write, intact in zip(writes, checks, strict=True) if intact]


def _gather(buffer: bytes, start: int, stride: int, count: int, width: int) -> bytearray:
    """`width` bytes from each record, back to back."""
    out = bytearray(width * count)
    for index in range(width):
        out[index::width] = column(buffer, start + index, stride, count)
    return out


def _numbers(buffer: bytes, start: int, records: _Kind, element: str) -> Sequence[float]:
    """The number in `element` format at `start` of each record."""
    width = struct.calcsize("<" + element)
    gathered = _gather(buffer, start, records.stride, records.number, width)
    numbers = struct.unpack(f"<{records.number}{element}", gathered)
    return numbers if element in "fd" else list(map(float, numbers))


def _strings(buffer: bytes, start: int, records: _Kind, slot: _Slot) -> list[str]:
    """The UTF-8 text at `start` of each record."""
    width = slot.end - slot.start
    raw = bytes(_gather(buffer, start, records.stride, records.number, width))
    return [
        raw[pos : pos + width].decode("utf-8", errors="replace")
        for pos in range(0, width * records.number, width)
    ]
