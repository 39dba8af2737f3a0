"""EvalDirReader on local files: merging files, incremental reads, truncation, damage, resets."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.events.eval_dir import (
    DEFAULT_EVENT_FILE_PATTERN,
    EvalDirReader,
    nearby_event_files,
    validate_event_file_pattern,
)
from airflow_tf_export.events.event_file import TAIL_SIZE
from airflow_tf_export.storage.local import LocalStorage

from .event_builders import (
    append_events,
    checkpoint_event,
    file_version_event,
    frame,
    simple_value_event,
    write_events,
)

FILE_A = "eval/events.out.tfevents.1700000000.host"
FILE_B = "eval/events.out.tfevents.1700000500.host"


def _reader(model_dir: Path, **kwargs: int | None) -> EvalDirReader:
    return EvalDirReader(LocalStorage(), str(model_dir), DEFAULT_EVENT_FILE_PATTERN, **kwargs)


def _metrics(reader: EvalDirReader) -> dict[int, dict[str, float]]:
    return {r.step: dict(r.metrics) for r in reader.results()}


def test_a_missing_eval_dir_is_empty_not_an_error(tmp_path: Path) -> None:
    reader = _reader(tmp_path)
    assert reader.refresh().records == 0
    assert reader.results() == []
    assert list(reader.newest_first()) == []


def test_files_of_a_restarted_evaluator_merge_and_the_rewrite_wins(tmp_path: Path) -> None:
    write_events(
        tmp_path / FILE_A,
        [
            simple_value_event(100, {"loss": 0.875}, wall_time=10.0),
            checkpoint_event(100, "/m/model.ckpt-100", wall_time=10.5),
            simple_value_event(200, {"loss": 0.75}, wall_time=20.0),
        ],
    )
    write_events(
        tmp_path / FILE_B,
        [
            simple_value_event(200, {"loss": 0.625}, wall_time=30.0),
            checkpoint_event(200, "/m/model.ckpt-200", wall_time=30.5),
        ],
    )
    reader = _reader(tmp_path)
    reader.refresh()
    assert _metrics(reader) == {100: {"loss": 0.875}, 200: {"loss": 0.625}}
    newest = reader.result(200)
    assert newest.checkpoint_path == "/m/model.ckpt-200"
    assert newest.source == str(tmp_path / FILE_B)
    assert reader.steps() == [100, 200]
    assert reader.event_files() == [str(tmp_path / FILE_A), str(tmp_path / FILE_B)]
    with pytest.raises(KeyError):
        reader.result(150)


def test_a_second_read_of_a_growing_file_reads_only_the_new_bytes(tmp_path: Path) -> None:
    path = tmp_path / FILE_A
    size = write_events(path, [simple_value_event(s, {"loss": s / 1000}) for s in range(1, 50)])
    reader = _reader(tmp_path)
    assert reader.refresh().bytes_read == size
    assert reader.refresh().bytes_read == 0
    appended = append_events(path, [simple_value_event(50, {"loss": 0.05})])
    stats = reader.refresh()
    # The new bytes, and the few before them that show the file is the one read before.
    assert (stats.bytes_read, stats.records) == (appended + TAIL_SIZE, 1)
    assert next(reader.newest_first()).step == 50


def test_a_record_being_written_is_read_once_complete(tmp_path: Path) -> None:
    path = tmp_path / FILE_A
    write_events(path, [simple_value_event(1, {"loss": 1.0})])
    record = frame(simple_value_event(2, {"loss": 0.5}))
    reader = _reader(tmp_path)
    reader.refresh()
    for piece in (record[:5], record[5:12], record[12:-1]):
        with path.open("ab") as handle:
            handle.write(piece)
        stats = reader.refresh()
        assert (stats.records, stats.damaged_records) == (0, 0)
        assert reader.steps() == [1]
    with path.open("ab") as handle:
        handle.write(record[-1:])
    assert reader.refresh().records == 1
    assert reader.steps() == [1, 2]


def test_damaged_records_are_skipped_counted_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / FILE_A
    write_events(path, [simple_value_event(s, {"loss": 1.0 / s}) for s in (1, 2, 3)])
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # inside the last record's payload
    path.write_bytes(bytes(data) + b"garbage appended by a crashed writer")
    reader = _reader(tmp_path)
    stats = reader.refresh()
    assert stats.damaged_records == 2
    assert reader.skipped_records == 2
    assert reader.steps() == [1, 2]
    assert "damaged bytes" in caplog.text and str(path) in caplog.text
    assert reader.refresh().damaged_records == 0  # the garbage is not counted again


def test_a_replaced_or_deleted_file_is_read_again_from_scratch(tmp_path: Path) -> None:
    write_events(tmp_path / FILE_A, [simple_value_event(s, {"loss": 1.0}) for s in (1, 2, 3)])
    write_events(tmp_path / FILE_B, [simple_value_event(9, {"loss": 0.5})])
    reader = _reader(tmp_path)
    reader.refresh()
    assert reader.steps() == [1, 2, 3, 9]
    write_events(tmp_path / FILE_A, [simple_value_event(4, {"loss": 0.9})])  # shorter
    reader.refresh()
    assert reader.steps() == [4, 9]
    (tmp_path / FILE_B).unlink()
    reader.refresh()
    assert reader.steps() == [4]


def test_small_chunks_give_the_same_results(tmp_path: Path) -> None:
    events = [simple_value_event(s, {"loss": s / 7, "auc": s / 9}) for s in range(1, 40)]
    write_events(tmp_path / FILE_A, events)
    whole, chunked = _reader(tmp_path), _reader(tmp_path, chunk_size=7)
    whole.refresh()
    chunked.refresh()
    assert chunked.results() == whole.results()
    with pytest.raises(ValueError, match="chunk_size"):
        _reader(tmp_path, chunk_size=0).refresh()


def test_the_pattern_selects_the_eval_dir(tmp_path: Path) -> None:
    write_events(tmp_path / FILE_A, [simple_value_event(1, {"loss": 1.0})])
    write_events(
        tmp_path / "eval_holdout/events.out.tfevents.1.host", [simple_value_event(2, {"loss": 2.0})]
    )
    holdout = EvalDirReader(LocalStorage(), str(tmp_path), "eval_holdout/*.tfevents.*")
    holdout.refresh()
    assert holdout.steps() == [2]


@pytest.mark.parametrize(
    "pattern", ["", "  ", "/abs/eval/*", "gs://b/eval/*", "../eval/*", "eval//*", "eval\\*", 7]
)
def test_bad_patterns_are_rejected_by_name(pattern: object) -> None:
    with pytest.raises(ValueError, match="event_file_pattern") as error:
        validate_event_file_pattern(pattern)
    assert repr(pattern) in str(error.value)


def test_an_undecodable_event_is_skipped_and_counted(tmp_path: Path) -> None:
    # Step 5 with a summary whose only value claims 4 bytes of which the tag claims 9: the
    # record's CRCs are right, its protobuf is not.
    broken = b"\x10\x05\x2a\x06\x0a\x04\x0a\x09ab"
    write_events(tmp_path / FILE_A, [broken, simple_value_event(5, {"loss": 1.0})])
    reader = _reader(tmp_path)
    stats = reader.refresh()
    assert stats.undecodable_records == 1 and reader.skipped_records == 1
    assert _metrics(reader) == {5: {"loss": 1.0}}


def test_a_file_rewritten_whole_with_more_events_reads_only_the_new_ones(tmp_path: Path) -> None:
    """TensorFlow on GCS uploads the whole file again at each flush: the start is unchanged."""
    events = [simple_value_event(s, {"loss": s / 100}) for s in range(1, 30)]
    size = write_events(tmp_path / FILE_A, events[:20])
    reader = _reader(tmp_path)
    reader.refresh()
    grown = write_events(tmp_path / FILE_A, events)
    stats = reader.refresh()
    assert stats.bytes_read == grown - size + TAIL_SIZE
    assert reader.steps() == list(range(1, 30))


def test_a_file_replaced_by_a_longer_different_one_is_read_again(tmp_path: Path) -> None:
    write_events(tmp_path / FILE_A, [simple_value_event(s, {"loss": 1.0}) for s in range(1, 10)])
    reader = _reader(tmp_path)
    reader.refresh()
    # Same name, other events, larger: only the bytes before the old offset tell.
    write_events(tmp_path / FILE_A, [simple_value_event(s, {"auc": 0.5}) for s in range(100, 120)])
    reader.refresh()
    assert _metrics(reader) == {s: {"auc": 0.5} for s in range(100, 120)}


def test_a_file_replaced_by_one_of_the_same_size_is_read_again(tmp_path: Path) -> None:
    write_events(tmp_path / FILE_A, [simple_value_event(s, {"loss": 1.0}) for s in range(1, 10)])
    reader = _reader(tmp_path)
    reader.refresh()
    write_events(tmp_path / FILE_A, [simple_value_event(s, {"loss": 2.0}) for s in range(1, 10)])
    os.utime(tmp_path / FILE_A, (1, 1))  # a new modification time, as any rewrite has
    reader.refresh()
    assert _metrics(reader) == {s: {"loss": 2.0} for s in range(1, 10)}


def test_min_step_keeps_only_higher_steps_and_lowering_it_reads_again(tmp_path: Path) -> None:
    write_events(tmp_path / FILE_A, [simple_value_event(s, {"loss": s / 8}) for s in range(1, 9)])
    reader = _reader(tmp_path, min_step=5)
    reader.refresh()
    assert reader.steps() == [5, 6, 7, 8]
    reader.set_min_step(7)  # raised: what is below is forgotten, nothing read
    assert reader.steps() == [7, 8]
    assert reader.refresh().bytes_read == 0
    reader.set_min_step(2)  # lowered: dropped steps are needed again
    reader.refresh()
    assert reader.steps() == [2, 3, 4, 5, 6, 7, 8]
    reader.set_min_step(None)
    reader.refresh()
    assert reader.steps() == list(range(1, 9))


def test_a_settled_wait_keeps_only_the_newest_settling_step(tmp_path: Path) -> None:
    write_events(tmp_path / FILE_A, [simple_value_event(s, {"loss": 1.0}) for s in range(1, 500)])
    reader = _reader(tmp_path)
    reader.refresh(settles=lambda result: result.step % 100 == 0)
    assert reader.steps() == list(range(400, 500))
    assert reader.min_step is None  # what was asked for is unchanged


def _resumed(tmp_path: Path, cursor: object, **kwargs: int) -> tuple[EvalDirReader, bool]:
    reader = _reader(tmp_path, **kwargs)
    return reader, reader.resume(json.loads(json.dumps(cursor)))


def test_a_cursor_resumes_another_reader_where_the_first_stopped(tmp_path: Path) -> None:
    path = tmp_path / FILE_A
    events = [
        simple_value_event(s, {"loss": v}) for s, v in ((1, 0.5), (2, math.nan), (3, math.inf))
    ]
    write_events(path, events)
    write_events(tmp_path / FILE_B, [checkpoint_event(3, "/m/model.ckpt-3")])
    first = _reader(tmp_path)
    first.refresh()
    cursor = first.cursor()
    assert cursor is not None
    appended = append_events(path, [simple_value_event(4, {"loss": 0.25})])
    second, resumed = _resumed(tmp_path, cursor)
    assert resumed
    stats = second.refresh()
    assert stats.bytes_read == appended + TAIL_SIZE  # only the new bytes
    first.refresh()
    assert [r.to_dict() for r in second.results()] == [r.to_dict() for r in first.results()]
    assert second.result(3).checkpoint_path == "/m/model.ckpt-3"


def test_a_cursor_notices_files_replaced_or_truncated_since(tmp_path: Path) -> None:
    path = tmp_path / FILE_A
    write_events(path, [simple_value_event(s, {"loss": 1.0}) for s in range(1, 6)])
    reader = _reader(tmp_path)
    reader.refresh()
    cursor = reader.cursor()
    write_events(path, [simple_value_event(s, {"auc": 0.5}) for s in range(10, 30)])  # larger
    replaced, _ = _resumed(tmp_path, cursor)
    replaced.refresh()
    assert _metrics(replaced) == {s: {"auc": 0.5} for s in range(10, 30)}
    write_events(path, [simple_value_event(1, {"loss": 3.0})])  # smaller than the offset
    truncated, _ = _resumed(tmp_path, cursor)
    truncated.refresh()
    assert _metrics(truncated) == {1: {"loss": 3.0}}


@pytest.mark.parametrize(
    "cursor",
    [None, 7, {"version": 99}, {"version": 1, "pattern_uri": "/elsewhere/eval/*"}, "text"],
)
def test_a_foreign_or_damaged_cursor_is_ignored(tmp_path: Path, cursor: object) -> None:
    write_events(tmp_path / FILE_A, [simple_value_event(1, {"loss": 1.0})])
    reader, resumed = _resumed(tmp_path, cursor)
    assert not resumed
    reader.refresh()
    assert reader.steps() == [1]


def test_a_cursor_with_bad_fields_is_ignored(tmp_path: Path) -> None:
    write_events(tmp_path / FILE_A, [simple_value_event(1, {"loss": 1.0})])
    reader = _reader(tmp_path)
    reader.refresh()
    cursor = reader.cursor()
    assert cursor is not None
    for damaged in (
        {**cursor, "files": [{"uri": "x"}]},
        {**cursor, "files": [{**cursor["files"][0], "offset": -4}]},
        {**cursor, "writes": [[1, 2.0]]},
        {**cursor, "min_step": "5"},
    ):
        again, resumed = _resumed(tmp_path, damaged)
        assert not resumed
        again.refresh()
        assert again.steps() == [1]


def test_a_resumed_reader_keeps_the_cursor_s_min_step_until_told_otherwise(
    tmp_path: Path,
) -> None:
    write_events(tmp_path / FILE_A, [simple_value_event(s, {"loss": 1.0}) for s in (1, 9)])
    reader = _reader(tmp_path, min_step=5)
    reader.refresh()
    cursor = reader.cursor()
    assert cursor is not None and cursor["min_step"] == 5
    resumed, ok = _resumed(tmp_path, cursor)
    assert ok and resumed.min_step == 5 and resumed.steps() == [9]
    assert resumed.refresh().bytes_read == 0
    resumed.set_min_step(1)  # the cursor dropped steps 1..4: they are read again
    resumed.refresh()
    assert resumed.steps() == [1, 9]


def test_no_cursor_when_too_much_is_held(tmp_path: Path) -> None:
    write_events(
        tmp_path / FILE_A, [simple_value_event(s, {"l" * (s % 3 + 1): 1.0}) for s in range(1, 1100)]
    )
    reader = _reader(tmp_path)
    reader.refresh()
    assert reader.cursor() is None


@given(cuts=st.lists(st.integers(min_value=0), max_size=6), chunk=st.integers(1, 300))
def test_reading_a_file_as_it_grows_in_any_pieces_equals_reading_it_whole(
    tmp_path_factory: pytest.TempPathFactory, cuts: list[int], chunk: int
) -> None:
    """A writer appends bytes in arbitrary pieces (records cut anywhere); every refresh
    reads what is there, in chunks of any size: in the end, the same as one read."""
    root = tmp_path_factory.mktemp("growing")
    events = [simple_value_event(s, {"loss": s / 7}) for s in range(1, 80)] + [
        checkpoint_event(79, "/m/model.ckpt-79")
    ]
    data = frame(file_version_event()) + b"".join(frame(e) for e in events)
    path = root / FILE_A
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    growing = _reader(root, chunk_size=chunk)
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        path.write_bytes(data[:cut])
        growing.refresh()
    whole = _reader(root)
    whole.refresh()
    assert growing.results() == whole.results()
    assert len(whole.steps()) == 79


def test_nearby_event_files_counts_them_in_the_model_dir_and_its_subdirectories(
    tmp_path: Path,
) -> None:
    for name in (
        "events.out.tfevents.1700000000.host",  # training summaries, as Estimator writes them
        "validation/events.out.tfevents.1700000000.host.v2",
        "validation/events.out.tfevents.1700000100.host.v2",
        "logs/train/events.out.tfevents.1700000000.host.v2",  # deeper: not looked at
        "export/best/1700000000/saved_model.pb",
    ):
        write_events(tmp_path / name, [simple_value_event(1, {"loss": 0.5})])
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')
    (tmp_path / "eval").mkdir()
    assert nearby_event_files(LocalStorage(), str(tmp_path)) == {"": 1, "validation": 2}
    assert nearby_event_files(LocalStorage(), str(tmp_path / "eval")) == {}
    assert nearby_event_files(LocalStorage(), str(tmp_path / "absent")) is None
