"""EvalDirReader on local files: merging files, incremental reads, truncation, damage, resets."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_tf_export.events.eval_dir import (
    DEFAULT_EVENT_FILE_PATTERN,
    EvalDirReader,
    validate_event_file_pattern,
)
from airflow_tf_export.events.event_file import TAIL_SIZE
from airflow_tf_export.storage.local import LocalStorage

from .event_builders import (
    append_events,
    checkpoint_event,
    frame,
    simple_value_event,
    write_events,
)

FILE_A = "eval/events.out.tfevents.1700000000.host"
FILE_B = "eval/events.out.tfevents.1700000500.host"


def _reader(model_dir: Path, **kwargs: int) -> EvalDirReader:
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
