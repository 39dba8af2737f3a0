"""The summary events of a `RecordRun`, read column by column instead of record by record.

In a run, the records at the same place of every period (a "kind": say, the metrics event of
each evaluation) are nearly identical byte for byte: what changes is the wall time, the step
and the metric values, all at fixed byte positions (`wire` finds them; `columns` reads a
position of every record at once). So:

- Steps: the first record's envelope says where the step is; a few byte columns confirm
  every record of the kind has that envelope (`wall_time`, `step`, `summary` and nothing
  else, the summary running to the record's end), and the step bytes of all records come
  out of a handful of columns. Records below the wanted step are dropped here, without
  their CRC being computed: their content is never used, so checking it would change
  nothing but the cost.
- Values, when many records are kept: a template. The first record is decoded by protobuf
  (`summaries.decode_values`, the one definition of what a value is) and walked by
  `wire.template`, which finds the bytes each value came from. Every other byte of every
  record is checked, column by column, to equal the template's; then each record parses
  exactly like the template except for those bytes, and its values are read from them.
  Records whose tags cycle within a kind (a TF2 writer's one-event-per-metric, all of one
  length) are split into that many templates.
- Bundles: the events one period wrote at one step (a TF2 writer's metrics of a step) are
  handed on as one write, which the merge takes apart only when it must (`bundle`).

Anything that does not fit (a template that fails a check, an unsupported encoding, a
damaged record) is decoded record by record with protobuf, so the columns only ever make
reading faster, never different. Kept records are always CRC-checked before use.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import pairwise, repeat
from operator import add, itemgetter, le, lshift, or_
from types import MappingProxyType
from typing import Any, NamedTuple

from airflow_tf_export.events import wire
from airflow_tf_export.events.columns import column, crc_checks, gather, leading_matches
from airflow_tf_export.events.summaries import UndecodableEventError, decode_event
from airflow_tf_export.events.tfrecord import HEADER_SIZE, MAX_PERIOD, RecordRun

TEMPLATE_MIN_RECORDS = 64
"""Fewer kept records than this are decoded one by one (a template costs a few columns per
byte of the record, whatever the number of records)."""

PartTags = tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
Parts = tuple[PartTags, tuple[tuple[float, int], ...]]
"""The events a bundle stands for: each one's scalar and string tags, then each one's
(wall time, record offset)."""

Write = tuple[int, int, float, Mapping[str, float], Mapping[str, str], Parts | None]
"""(record offset in the file, step, wall time, scalars, strings, parts) of one kept summary
event, or of a bundle of the events one period of a run wrote at one step (`parts` then
says which; the offset and wall time are the newest event's)."""

Indices = range | list[int]
"""Records of a kind, by their index in it: a range when they follow each other."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_LOW_SEVEN = bytes(range(128)) * 2
_HIGH_BIT = bytes([0] * 128 + [1] * 128)


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
) -> Iterator[list[Write]]:
    """The summary events of `run` at steps >= `min_step` (all when None), CRC-checked, in
    lists: one per place in the period, or one of bundles (`bundle`).

    `on_damage(offset, reason)` hears of each kept record that fails its CRC or its decoding.
    """
    pieces: list[Columns | list[Write]] = []
    for data_offset, length in run.records:
        kind = _Kind(run.start + data_offset, length, run.period, run.count)
        pieces += _kind_events(buffer, base_offset, kind, min_step, on_damage)
    bundled = bundle(pieces) if len(pieces) == len(run.records) > 1 else None
    if bundled is not None:
        yield bundled
        return
    for piece in pieces:
        writes = piece.writes() if isinstance(piece, Columns) else piece
        if writes:
            yield writes


def bundle(pieces: Sequence[Columns | list[Write]]) -> list[Write] | None:
    """One write per step for the events of a run's places, when they can stand as one:
    every place decoded by a template, all at the same steps, no tag in two places, and
    wall times in the order of the records (so the last place's event is the newest).

    A run need not start with a step's first event: with places p0..pk, the step's first
    event may be at place r, its others at r+1..pk and then at p0..r-1 of the next period.
    The events of the steps cut at the run's two ends are handed back one by one.

    The merged result of a step is then the bundle's values, exactly as if each event had
    been merged on its own; `StepMerger` takes a bundle apart when its step has other
    events too, so the merge stays exact whatever else is written.
    """
    columns = [piece for piece in pieces if isinstance(piece, Columns)]
    if len(columns) != len(pieces):
        return None
    scalar_tags = [tag for c in columns for tag in c.scalar_tags]
    string_tags = [tag for c in columns for tag in c.string_tags]
    if len(set(scalar_tags)) != len(scalar_tags) or len(set(string_tags)) != len(string_tags):
        return None
    for first in range(len(columns)):
        steps = columns[first].steps
        later, earlier = columns[first:], columns[:first]
        if all(c.steps == steps for c in later) and all(c.steps[1:] == steps[:-1] for c in earlier):
            if not first:
                return _bundled(columns)
            cut = [c.part(0, 1) for c in earlier] + [c.part(-1, None) for c in later]
            whole = [c.part(0, -1) for c in later] + [c.part(1, None) for c in earlier]
            bundled = _bundled(whole)
            if bundled is None:
                return None
            return bundled + [write for c in cut for write in c.writes()]
    return None


def _bundled(columns: list[Columns]) -> list[Write] | None:
    if not all(all(map(le, a.wall_times, b.wall_times)) for a, b in pairwise(columns)):
        return None
    part_tags: PartTags = tuple((tuple(c.scalar_tags), tuple(c.string_tags)) for c in columns)
    keys = zip(*[zip(c.wall_times, c.offsets, strict=True) for c in columns], strict=True)
    newest = columns[-1]
    merged = Columns(
        newest.offsets,
        newest.steps,
        newest.wall_times,
        [tag for c in columns for tag in c.scalar_tags],
        [column for c in columns for column in c.scalar_columns],
        [tag for c in columns for tag in c.string_tags],
        [column for c in columns for column in c.string_columns],
    )
    return merged.writes(zip(repeat(part_tags), keys))


class Columns(NamedTuple):
    """Kept events of one template, column by column (every record intact)."""

    offsets: Sequence[int]
    steps: Sequence[int]
    wall_times: Sequence[float]
    scalar_tags: list[str]
    scalar_columns: list[Sequence[float]]
    string_tags: list[str]
    string_columns: list[Sequence[str]]

    def part(self, start: int, stop: int | None) -> Columns:
        """The events `start:stop`."""
        return Columns(
            self.offsets[start:stop],
            self.steps[start:stop],
            self.wall_times[start:stop],
            self.scalar_tags,
            [column[start:stop] for column in self.scalar_columns],
            self.string_tags,
            [column[start:stop] for column in self.string_columns],
        )

    def writes(self, parts: Iterable[Parts | None] | None = None) -> list[Write]:
        """One write per event (or bundle, with its `parts`)."""
        scalars = (
            map(dict, map(zip, repeat(self.scalar_tags), zip(*self.scalar_columns, strict=True)))
            if self.scalar_columns
            else repeat(_EMPTY)
        )
        strings = (
            map(dict, map(zip, repeat(self.string_tags), zip(*self.string_columns, strict=True)))
            if self.string_columns
            else repeat(_EMPTY)
        )
        return list(
            zip(
                self.offsets,
                self.steps,
                self.wall_times,
                scalars,
                strings,
                repeat(None) if parts is None else parts,
                strict=False,
            )
        )


def _kind_events(
    buffer: bytes,
    base_offset: int,
    kind: _Kind,
    min_step: int | None,
    on_damage: Callable[[int, str], None],
) -> list[Columns | list[Write]]:
    layout = wire.envelope(buffer[kind.first : kind.first + kind.length])
    groups = None if layout is None else _step_groups(layout, buffer, kind)
    if layout is None or groups is None:
        every = kind.starts(range(kind.number))
        return [_one_by_one(buffer, base_offset, every, kind.length, min_step, on_damage)]
    kept = at_or_above(groups, kind.number, min_step)
    if not kept:
        return []
    if len(kept) < TEMPLATE_MIN_RECORDS:
        starts = kind.starts(kept)
        return [_one_by_one(buffer, base_offset, starts, kind.length, min_step, on_damage)]
    steps = _steps(groups, kind.number)
    return _by_template(buffer, base_offset, kind, kept, steps, layout, on_damage)


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
    for start, intact in zip(starts, crc_checks(buffer, starts, length), strict=True):
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
            writes.append(
                (offset, event.step, event.wall_time, values.scalars, values.strings, None)
            )
    return writes


def at_or_above(groups: list[bytes], count: int, min_step: int | None) -> Indices:
    """Indices of the records whose step (as `_step_groups` gives them) is >= `min_step`: a
    range when they are the records from some index on (always so when steps ascend)."""
    if min_step is None or min_step <= 0:
        return range(count)
    if not groups or min_step >= 1 << (7 * len(groups)):
        return []
    first = _first_at_or_above(groups, count, min_step)
    if first is not None:
        return range(first, count)
    # Out of order: each step as a number whose bytes are its 7-bit groups, one by one.
    lanes = bytearray(8 * count)
    for group, values in enumerate(groups):
        lanes[7 - group :: 8] = values
    keys = struct.unpack(f">{count}Q", lanes)
    floor = sum(((min_step >> (7 * g)) & 0x7F) << (8 * g) for g in range(len(groups)))
    return [index for index, key in enumerate(keys) if key >= floor]


def _first_at_or_above(groups: list[bytes], count: int, min_step: int) -> int | None:
    """The index from which every record is at or above `min_step` and before which every
    one is below it, when the step columns show there is one (they do whenever steps
    ascend); None otherwise.

    Group by group from the most significant, each undecided record is found below, equal
    to or above `min_step`'s group (one `translate` of the column); the undecided records
    must read below..., equal..., above..., and only the equal ones stay undecided. A few
    C-speed passes over byte columns, instead of a number made per record.
    """
    low, high = 0, count  # records before `low` are below, from `high` on at or above
    for group in reversed(range(len(groups))):
        wanted = (min_step >> (7 * group)) & 0x7F
        equal = b"\x01" if group else b"\x02"  # at the lowest group, equal is at or above
        order = groups[group][low:high].translate(
            b"\x00" * wanted + equal + b"\x02" * (255 - wanted)
        )
        below = order.count(0)
        not_above = len(order) - order.count(2)
        if order != (
            b"\x00" * below + b"\x01" * (not_above - below) + b"\x02" * (len(order) - not_above)
        ):
            return None
        low, high = low + below, low + not_above
        if low == high:
            break
    return low


def _steps(groups: list[bytes], count: int) -> list[int]:
    """The step of every record, from its `step_groups`."""
    if not groups:
        return [0] * count
    steps = list(groups[0])
    for group, values in enumerate(groups[1:], start=1):
        steps = list(map(or_, steps, map(lshift, values, repeat(7 * group))))
    return steps


def _by_template(
    buffer: bytes,
    base_offset: int,
    kind: _Kind,
    kept: Indices,
    steps: list[int],
    envelope: wire.Envelope,
    on_damage: Callable[[int, str], None],
) -> list[Columns | list[Write]]:
    """Decode the kept records of one kind through templates, one per cycle position."""
    cycle = _cycle(buffer, kind, envelope)
    pieces: list[Columns | list[Write]] = []
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
            starts = records.starts(positions)
            pieces.append(_one_by_one(buffer, base_offset, starts, kind.length, None, on_damage))
            continue
        phase_steps = _select(steps[phase::cycle], positions)
        pieces.append(
            _template_events(
                buffer, base_offset, template, records, positions, phase_steps, envelope, on_damage
            )
        )
    return pieces


def _cycle(buffer: bytes, kind: _Kind, envelope: wire.Envelope) -> int:
    """How many records of a kind pass before the values' layout repeats (tags that take
    turns in equally long records); 1 when it cannot be told."""
    shapes = []
    for index in range(min(kind.number, 2 * MAX_PERIOD)):
        start = kind.first + index * kind.stride
        data = buffer[start : start + kind.length]
        template = wire.template(data, envelope)
        if template is None:
            return 1
        shapes.append((bytes(data[pos] for pos in template.fixed), template.slots))
        half = len(shapes) // 2
        if len(shapes) % 2 == 0 and shapes[:half] == shapes[half:]:
            return half
    return 1


def _checked_template(
    buffer: bytes, records: _Kind, envelope: wire.Envelope
) -> wire.Template | None:
    """The template of the first record, if every record's fixed bytes equal its bytes."""
    first, length, stride, count = records
    if not crc_checks(buffer, [first], length)[0]:
        return None
    data = buffer[first : first + length]
    template = wire.template(data, envelope)
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
    template: wire.Template,
    records: _Kind,
    positions: Indices,
    steps: Sequence[int],
    envelope: wire.Envelope,
    on_damage: Callable[[int, str], None],
) -> Columns | list[Write]:
    """The kept records (`positions` among the template's records) decoded from columns;
    as writes when some fail their CRC (they are left out)."""
    if isinstance(positions, range):  # read the columns of the kept records only
        records = _Kind(
            records.first + positions.start * records.stride,
            records.length,
            records.stride,
            len(positions),
        )
        positions = range(len(positions))
    first = records.first
    starts = records.starts(positions)
    wall_times: Sequence[float] = (
        [0.0] * len(positions)
        if envelope.wall_time is None
        else _select(_numbers(buffer, first + envelope.wall_time, records, "d"), positions)
    )
    columns = Columns(
        list(map(add, starts, repeat(base_offset - HEADER_SIZE))),
        steps,
        wall_times,
        [],
        [],
        [],
        [],
    )
    for slot in template.slots:
        if slot.kind == "s":
            columns.string_tags.append(slot.tag)
            values = _strings(buffer, first + slot.start, records, slot)
            columns.string_columns.append(_select(values, positions))
        else:
            columns.scalar_tags.append(slot.tag)
            numbers = _numbers(buffer, first + slot.start, records, slot.kind)
            columns.scalar_columns.append(_select(numbers, positions))
    for tag, number in template.constant_scalars.items():
        columns.scalar_tags.append(tag)
        columns.scalar_columns.append([number] * len(positions))
    for tag, text in template.constant_strings.items():
        columns.string_tags.append(tag)
        columns.string_columns.append([text] * len(positions))
    checks = crc_checks(buffer, starts, records.length)
    if all(checks):
        return columns
    writes = columns.writes()
    for write, intact in zip(writes, checks, strict=True):
        if not intact:
            on_damage(write[0], "data CRC")
    return [write for write, intact in zip(writes, checks, strict=True) if intact]


def _numbers(buffer: bytes, start: int, records: _Kind, element: str) -> Sequence[float]:
    """The number in `element` format at `start` of each record."""
    width = struct.calcsize("<" + element)
    gathered = gather(buffer, start, records.stride, records.number, width)
    numbers = struct.unpack(f"<{records.number}{element}", gathered)
    return numbers if element in "fd" else list(map(float, numbers))


def _strings(buffer: bytes, start: int, records: _Kind, slot: wire.Slot) -> list[str]:
    """The UTF-8 text at `start` of each record."""
    width = slot.end - slot.start
    raw = bytes(gather(buffer, start, records.stride, records.number, width))
    return [
        raw[pos : pos + width].decode("utf-8", errors="replace")
        for pos in range(0, width * records.number, width)
    ]


def _step_groups(layout: wire.Envelope, buffer: bytes, kind: _Kind) -> list[bytes] | None:
    """The 7-bit groups of every record's step, least significant first, a column per
    group; None when a record of the kind has another envelope."""
    first, _, stride, count = kind
    for pos, byte in layout.fixed:
        if leading_matches(buffer, first + pos, stride, count, byte) != count:
            return None
    if layout.step is None:
        return []
    start, end = layout.step
    groups = []
    for pos in range(start, end):
        values = column(buffer, first + pos, stride, count)
        more = values.translate(_HIGH_BIT)  # continuation bits make a varint's length
        if more != (b"\x01" if pos < end - 1 else b"\x00") * count:
            return None
        groups.append(values.translate(_LOW_SEVEN))
    return groups
