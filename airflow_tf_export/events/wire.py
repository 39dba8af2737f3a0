"""Where things are in one serialized `Event`: the protobuf wire format read directly.

Protobuf's own parser (`summaries`) says what an event means; this module says at which
bytes each part of it sits, which is what reading many alike records column by column
(`event_runs`) needs: the envelope (wall time, step, summary) and a template (the bytes each
value is read from, and the bytes that must be equal in every record for it to apply).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from airflow_tf_export.events.summaries import NUMERIC_DTYPES, UndecodableEventError, decode_values


class Malformed(Exception):
    """The wire reader met something it does not read (or that is not protobuf)."""


def _varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while pos < end and shift < 70:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise Malformed("truncated varint")


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
            raise Malformed(f"wire type {wire_type}")
        if payload_end > end:
            raise Malformed("field runs past its message")
        fields.append(_Field(number, wire_type, pos, payload, payload_end))
        pos = payload_end
    return fields


class Envelope(NamedTuple):
    """Where a summary event's wall time (8 bytes) and step (a varint) start, and the
    (position, byte) pairs that must be equal in another record for them to be at the same
    place: the field tags and the summary's length."""

    wall_time: int | None
    step: tuple[int, int] | None
    fixed: tuple[tuple[int, int], ...]


def envelope(data: bytes) -> Envelope | None:
    """The envelope of a record whose top-level fields are `wall_time` and `step` (each
    optional) then `summary` up to its end; None for any other record."""
    try:
        fields = _fields(data, 0, len(data))
    except Malformed:
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
    return Envelope(wall_time, step, fixed)


_ENVELOPE_PREFIXES: tuple[list[tuple[int, int]], ...] = ([], [(1, 1)], [(2, 0)], [(1, 1), (2, 0)])


class Slot(NamedTuple):
    """The bytes one value is read from, and how: a struct format letter or "s" (UTF-8)."""

    tag: str
    start: int
    end: int
    kind: str


class Template(NamedTuple):
    """How every record like the template record decodes: its slots, the values that are
    the same in all of them, and the positions whose bytes must equal the template's."""

    slots: tuple[Slot, ...]
    constant_scalars: dict[str, float]
    constant_strings: dict[str, str]
    fixed: tuple[int, ...]


def template(data: bytes, envelope: Envelope) -> Template | None:
    """The template of a record, or None when its values cannot be read from fixed slots."""
    try:
        values = decode_values(data)
        candidates = _value_candidates(data)
    except (UndecodableEventError, Malformed):
        return None
    tags = [tag for tag, _ in candidates]
    if len(set(tags)) != len(tags):
        return None
    found = dict(candidates)
    slots: list[Slot] = []
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
    return Template(tuple(slots), constant_scalars, constant_strings, fixed)


def _same(read: float | str, wanted: float | str) -> bool:
    if isinstance(read, str) or isinstance(wanted, str):
        return read == wanted
    return struct.pack("<d", read) == struct.pack("<d", wanted)  # NaN equals NaN here


def _read_slot(data: bytes, slot: Slot) -> float | str:
    raw = data[slot.start : slot.end]
    if slot.kind == "s":
        return raw.decode("utf-8", errors="replace")
    return float(struct.unpack("<" + slot.kind, raw)[0])


def _value_candidates(data: bytes) -> list[tuple[str, list[Slot]]]:
    """For each `Summary.Value`: its tag and every slot its number or string could be in."""
    summary = next(f for f in _fields(data, 0, len(data)) if f.number == 5)
    found = []
    for value in _fields(data, summary.payload_start, summary.payload_end):
        if value.number != 1 or value.wire_type != 2:
            continue
        tag = None
        slots: list[Slot] = []
        for f in _fields(data, value.payload_start, value.payload_end):
            if f.number == 1 and f.wire_type == 2:
                if tag is not None:
                    raise Malformed("two tags in one value")
                tag = data[f.payload_start : f.payload_end].decode("utf-8", errors="replace")
            elif f.number == 2 and f.wire_type == 5:
                slots.append(Slot("", f.payload_start, f.payload_end, "f"))
            elif f.number == 8 and f.wire_type == 2:
                slots += _tensor_slots(data, f.payload_start, f.payload_end)
        found.append((tag or "", slots))
    return found


def _tensor_slots(data: bytes, start: int, end: int) -> list[Slot]:
    fields = _fields(data, start, end)
    dtype = next((_varint(data, f.payload_start, end)[0] for f in fields if f.number == 1), 0)
    slots = []
    for f in fields:
        size = f.payload_end - f.payload_start
        kind = None
        if f.number == 4 and f.wire_type == 2:
            layout = NUMERIC_DTYPES.get(dtype)
            if layout is not None and size == struct.calcsize(layout[1]):
                kind = layout[1][1:]
        elif f.number == 5 and size == 4:
            kind = "f"
        elif f.number == 6 and size == 8:
            kind = "d"
        elif f.number in (7, 10):
            kind = "varint"
        elif f.number == 8 and f.wire_type == 2:
            kind = "s"
        if kind is not None:
            slots.append(Slot("", f.payload_start, f.payload_end, kind))
    return slots
