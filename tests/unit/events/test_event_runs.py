"""Column-wise reading of regular event files equals reading record by record.

The reference reads every record with `scan_records` (CRC-checked, one by one), decodes it
with protobuf (`decode_event`) and merges the events at steps >= min_step. The reader under
test frames runs of records column by column, drops steps below min_step unread, decodes
kept runs through templates and bundles a period's events: whatever the file (TF1, TF2,
Estimator-like, irregular, damaged, cut off mid-record), the chunk size and min_step, the
results must be the same.
"""

from __future__ import annotations

import math
import random
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tensorboard.compat.proto import (
    event_pb2,
    summary_pb2,
    tensor_pb2,
    tensor_shape_pb2,
    types_pb2,
)

from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.event_runs import at_or_above
from airflow_tf_export.events.merge import StepMerger
from airflow_tf_export.events.summaries import UndecodableEventError, decode_event
from airflow_tf_export.events.tfrecord import scan_records, split_records
from airflow_tf_export.storage.local import LocalStorage

from .event_builders import (
    checkpoint_event,
    float_tensor,
    frame,
    simple_value_event,
    string_tensor,
    tensor_event,
    write_events,
)

EVENT_FILE = "eval/events.out.tfevents.1700000000.host"
SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0]


def _value(rng: random.Random) -> float:
    if rng.random() < 0.05:
        return rng.choice(SPECIAL)
    return struct.unpack("<f", struct.pack("<f", rng.uniform(-10, 10)))[0]


def evaluations(flavour: str, count: int, seed: int, first_step: int) -> list[bytes]:
    """Events of `count` evaluations as an evaluator of `flavour` writes them."""
    rng = random.Random(seed)
    tags = ["loss", "auc", "accuracy"][: rng.randint(1, 3)]
    stride = rng.choice([1, 100])
    events = []
    for index in range(count):
        step, wall_time = first_step + index * stride, 1000.0 + index
        if flavour == "tf1":
            events.append(
                simple_value_event(step, {t: _value(rng) for t in tags}, wall_time=wall_time)
            )
        elif flavour == "tf2":
            events += [
                tensor_event(step, t, float_tensor(_value(rng)), wall_time=wall_time + i / 8)
                for i, t in enumerate(tags)
            ]
        elif flavour == "estimator":
            events.append(
                simple_value_event(step, {t: _value(rng) for t in tags}, wall_time=wall_time)
            )
            events.append(checkpoint_event(step, f"/m/model.ckpt-{step}", wall_time=wall_time))
        else:  # irregular: tags of random lengths, no two neighbours alike
            tag = "m" * rng.randint(1, 30)
            events.append(simple_value_event(step, {tag: _value(rng)}, wall_time=wall_time))
    return events


def reference_results(data: bytes, uri: str, min_step: int | None) -> StepMerger:
    """Record by record, each CRC-checked and decoded by protobuf."""
    merger = StepMerger()
    for offset, record in scan_records(data).records:
        try:
            event = decode_event(record)
        except UndecodableEventError:
            continue
        if event is None or (min_step is not None and event.step < min_step):
            continue
        scalars, strings = event.values
        merger.add(uri, [(offset, event.step, event.wall_time, scalars, strings, None)])
    return merger


def _same(a: StepMerger | EvalDirReader, b: StepMerger | EvalDirReader) -> bool:
    """Equal results, NaN equal to NaN."""

    def key(results: list) -> list:  # type: ignore[type-arg]
        return [
            (
                r.step,
                sorted((t, struct.pack("<d", v)) for t, v in r.metrics.items()),
                r.checkpoint_path,
                r.wall_time,
                r.source,
            )
            for r in results
        ]

    return key(a.results()) == key(b.results())


_files = st.lists(
    st.tuples(
        st.sampled_from(["tf1", "tf2", "estimator", "irregular"]),
        st.one_of(st.integers(1, 20), st.integers(64, 600)),  # evaluations
        st.integers(0, 2**16),  # seed
    ),
    min_size=1,
    max_size=3,
)


@given(
    parts=_files,
    min_step=st.one_of(st.none(), st.integers(0, 90_000)),
    chunk_size=st.sampled_from([97, 1024, 1 << 20]),
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=2),
    cut=st.integers(0, 40),
)
def test_reading_equals_reading_record_by_record(
    tmp_path_factory: object,
    parts: list[tuple[str, int, int]],
    min_step: int | None,
    chunk_size: int,
    flips: list[tuple[int, int]],
    cut: int,
) -> None:
    events: list[bytes] = []
    step = 1
    for flavour, count, seed in parts:
        events += evaluations(flavour, count, seed, step)
        step += count * 100
    data = bytearray(frame(event_pb2.Event(file_version="brain.Event:2").SerializeToString()))
    data += b"".join(frame(event) for event in events)
    for position, mask in flips:
        data[position % len(data)] ^= mask
    whole = bytes(data[: len(data) - cut])  # a writer may be in the middle of a record
    root = Path(tmp_path_factory.mktemp("runs"))  # type: ignore[attr-defined]
    path = root / EVENT_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(whole)
    reader = EvalDirReader(LocalStorage(), str(root), chunk_size=chunk_size, min_step=min_step)
    reader.refresh()
    assert _same(reader, reference_results(whole, str(path), min_step))


@pytest.mark.parametrize("flavour", ["tf1", "tf2", "estimator"])
@pytest.mark.parametrize("min_step", [None, 0, 25_000, 10**9])
@pytest.mark.parametrize("chunk_size", [1000, 1 << 20])
def test_each_writer_s_files_read_like_record_by_record(
    tmp_path: Path, flavour: str, min_step: int | None, chunk_size: int
) -> None:
    """Large regular files: runs, templates and (TF2, Estimator) bundles all take part."""
    path = tmp_path / EVENT_FILE
    write_events(path, evaluations(flavour, 600, 11, 1) + evaluations(flavour, 300, 12, 70_000))
    reader = EvalDirReader(LocalStorage(), str(tmp_path), chunk_size=chunk_size, min_step=min_step)
    reader.refresh()
    assert _same(reader, reference_results(path.read_bytes(), str(path), min_step))


def test_regular_files_are_framed_as_runs_and_read_column_wise(tmp_path: Path) -> None:
    """The fast paths are taken (else the test above would prove little)."""
    for flavour in ("tf1", "tf2", "estimator"):
        data = b"".join(frame(e) for e in evaluations(flavour, 500, 1, 1))
        framing = split_records(data)
        assert sum(run.count * len(run.records) for run in framing.runs) > 0.9 * len(
            scan_records(data).records
        )
    write_events(tmp_path / EVENT_FILE, evaluations("tf2", 500, 1, 1))
    reader = EvalDirReader(LocalStorage(), str(tmp_path))
    reader.refresh()
    # A TF2 writer's one event per metric of a step is held as one bundle per step.
    assert reader.held_writes < 520
    reference = reference_results(
        (tmp_path / EVENT_FILE).read_bytes(), str(tmp_path / EVENT_FILE), None
    )
    assert _same(reader, reference)


def test_steps_below_min_step_are_not_held(tmp_path: Path) -> None:
    write_events(tmp_path / EVENT_FILE, evaluations("tf1", 2000, 3, 1))
    everything = EvalDirReader(LocalStorage(), str(tmp_path))
    everything.refresh()
    newest = everything.steps()[-1]
    waiting = EvalDirReader(LocalStorage(), str(tmp_path), min_step=newest)
    stats = waiting.refresh()
    assert stats.records == 2001
    assert waiting.held_writes == 1
    assert waiting.results() == [everything.result(newest)]


def _step_columns(steps: list[int], width: int) -> list[bytes]:
    """Each step's 7-bit groups, a byte column per group, least significant first: what
    `event_runs` reads from the step varints of a kind's records."""
    return [bytes((step >> (7 * group)) & 0x7F for step in steps) for group in range(width)]


def _steps_of_width(width: int) -> st.SearchStrategy[list[int]]:
    """Steps anywhere in `width` groups, or close together (sharing their high groups)."""
    top = (1 << (7 * width)) - 1
    spread = st.lists(st.integers(0, top), min_size=1, max_size=200)
    close = st.tuples(st.integers(0, top), st.lists(st.integers(0, 300), min_size=1)).map(
        lambda base_gaps: [min(base_gaps[0] + gap, top) for gap in base_gaps[1]]
    )
    return st.one_of(spread, close)


@given(
    width_steps=st.integers(0, 8).flatmap(lambda w: st.tuples(st.just(w), _steps_of_width(w))),
    ascending=st.booleans(),
    data=st.data(),
)
def test_records_at_or_above_min_step_are_found_exactly(
    width_steps: tuple[int, list[int]], ascending: bool, data: st.DataObject
) -> None:
    """The column-wise search (a range when the steps are in order) keeps exactly the
    records a record-by-record comparison keeps, in order or not."""
    width, steps = width_steps
    if ascending:
        steps = sorted(steps)
    min_step = data.draw(
        st.one_of(
            st.none(),
            st.integers(-3, 1 << 57),
            st.sampled_from(steps),
            st.sampled_from(steps).map(lambda step: step + 1),
        )
    )
    kept = at_or_above(_step_columns(steps, width), len(steps), min_step)
    assert list(kept) == [
        index for index, step in enumerate(steps) if min_step is None or step >= min_step
    ]
    if ascending:  # found column-wise, not record by record
        assert isinstance(kept, range) or not kept


def test_a_damaged_record_in_a_run_is_skipped_and_counted(tmp_path: Path) -> None:
    events = evaluations("tf1", 300, 4, 1)
    data = bytearray(frame(events[0]) + b"".join(frame(e) for e in events[1:]))
    data[len(data) // 2] ^= 0x40  # inside some record of the run
    path = tmp_path / EVENT_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(bytes(data))
    reader = EvalDirReader(LocalStorage(), str(tmp_path))
    stats = reader.refresh()
    assert stats.damaged_records == 1
    assert len(reader.steps()) == 299
    assert _same(reader, reference_results(bytes(data), str(path), None))


def test_a_rewritten_step_inside_bundles_merges_as_event_by_event(tmp_path: Path) -> None:
    """A bundle is taken apart when its step has other events: each event keeps its key."""
    first = evaluations("tf2", 200, 5, 1)
    write_events(tmp_path / EVENT_FILE, first)
    step_events = [e for e in first if event_pb2.Event.FromString(e).step == 101]
    wall_times = [event_pb2.Event.FromString(e).wall_time for e in step_events]
    # A second file rewrites one tag of step 101 at a wall time between the step's events.
    tag = event_pb2.Event.FromString(step_events[0]).summary.value[0].tag
    between = (wall_times[0] + wall_times[-1]) / 2
    rewrite = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=7.5)])
    other = tmp_path / "eval/events.out.tfevents.1700000900.host"
    write_events(
        other,
        [event_pb2.Event(step=101, wall_time=between, summary=rewrite).SerializeToString()],
    )
    reader = EvalDirReader(LocalStorage(), str(tmp_path))
    reader.refresh()
    reference = reference_results(
        (tmp_path / EVENT_FILE).read_bytes(), str(tmp_path / EVENT_FILE), None
    )
    for offset, record in scan_records(other.read_bytes()).records:
        event = decode_event(record)
        if event is not None:
            scalars, strings = event.values
            reference.add(str(other), [(offset, 101, event.wall_time, scalars, strings, None)])
    assert _same(reader, reference)
    assert reader.result(101).metrics[tag] == 7.5  # later than the tag's own event


def _tensor(kind: str, value: float) -> tensor_pb2.TensorProto:
    if kind == "float_val":
        return float_tensor(value, as_content=False)
    if kind == "double":
        return tensor_pb2.TensorProto(
            dtype=types_pb2.DT_DOUBLE, tensor_content=struct.pack("<d", value)
        )
    if kind == "double_val":
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[value])
    if kind == "int32":
        return tensor_pb2.TensorProto(
            dtype=types_pb2.DT_INT32, tensor_content=struct.pack("<i", int(value * 100))
        )
    if kind == "int_val":  # varints: read one by one
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[int(value * 100)])
    if kind == "histogram":  # two elements: not a scalar, never a metric
        return tensor_pb2.TensorProto(
            dtype=types_pb2.DT_FLOAT,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2)]
            ),
            tensor_content=struct.pack("<2f", value, value),
        )
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind", ["float_val", "double", "double_val", "int32", "int_val", "histogram"]
)
def test_every_tensor_encoding_reads_like_protobuf(tmp_path: Path, kind: str) -> None:
    rng = random.Random(kind)
    events = [
        tensor_event(step, "metric", _tensor(kind, rng.uniform(0, 5)), wall_time=float(step))
        for step in range(1, 300)
    ]
    events += [
        tensor_event(step, "note", string_tensor(f"ckpt-{step:04d}"), plugin="text")
        for step in range(1, 300)
    ]
    path = tmp_path / EVENT_FILE
    write_events(path, events)
    reader = EvalDirReader(LocalStorage(), str(tmp_path))
    reader.refresh()
    assert _same(reader, reference_results(path.read_bytes(), str(path), None))
