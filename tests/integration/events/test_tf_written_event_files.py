"""The event reader on files TensorFlow wrote: TF1/Estimator and TF2 layouts, evaluator
restarts, damaged copies, growing files, GCS (emulator) and the newest committed export."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tf_event_writer import estimator_event_file, read_with_tensorflow, tf2_event_file

from airflow_tf_export.core.eval_wait import parse_eval_wait
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.eval_search import find_eval_result
from airflow_tf_export.events.event_file import TAIL_SIZE
from airflow_tf_export.events.tfrecord import scan_records
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage
from airflow_tf_export.storage.registry import storage_for

ESTIMATOR_EVALS = [
    (step, {"loss": 1.0 / step, "auc": 0.5 + step / 2000, "accuracy": step / 1000}, None)
    for step in (100, 200, 300, 400, 500)
]


def _with_checkpoints(model_dir: Path, evals: list[Any]) -> list[Any]:
    return [(s, m, str(model_dir / f"model.ckpt-{s}")) for s, m, _ in evals]


@pytest.fixture(scope="module")
def estimator_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An Estimator model dir whose evaluator restarted: the second event file rewrites
    step 500 (later wall time) and adds step 600."""
    model_dir = tmp_path_factory.mktemp("estimator")
    eval_dir = model_dir / "eval"
    estimator_event_file(eval_dir, _with_checkpoints(model_dir, ESTIMATOR_EVALS))
    restarted = [(500, {"loss": 0.125, "auc": 0.875, "accuracy": 0.75}, None)]
    restarted.append((600, {"loss": 0.0625, "auc": 0.9375, "accuracy": 0.875}, None))
    estimator_event_file(
        eval_dir, _with_checkpoints(model_dir, restarted), filename_suffix=".restart"
    )
    yield model_dir


@pytest.fixture(scope="module")
def tf2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model_dir = tmp_path_factory.mktemp("tf2")
    evals = [(10, {"loss": 0.5, "auc": 0.75}, None), (20, {"loss": 0.25, "auc": 0.875}, None)]
    tf2_event_file(model_dir / "eval", _with_checkpoints(model_dir, evals))
    return model_dir


def _read(model_dir: Path | str, **kwargs: Any) -> EvalDirReader:
    reader = EvalDirReader(storage_for(str(model_dir)), str(model_dir), **kwargs)
    reader.refresh()
    return reader


def _as_tensorflow_sees_it(reader: EvalDirReader) -> dict[int, dict[str, Any]]:
    steps: dict[int, dict[str, Any]] = {}
    for result in reader.results():
        steps[result.step] = dict(result.metrics)
        if result.checkpoint_path is not None:
            steps[result.step]["checkpoint_path"] = result.checkpoint_path
    return steps


def _event_files(model_dir: Path) -> list[Path]:
    return sorted((model_dir / "eval").glob("*.tfevents.*"))


def test_estimator_layout_reads_as_tensorflow_reads_it(estimator_dir: Path) -> None:
    files = _event_files(estimator_dir)
    assert len(files) == 2
    reader = _read(estimator_dir)
    assert _as_tensorflow_sees_it(reader) == read_with_tensorflow(files)
    rewritten = reader.result(500)
    assert dict(rewritten.metrics) == {"loss": 0.125, "auc": 0.875, "accuracy": 0.75}
    assert rewritten.checkpoint_path == str(estimator_dir / "model.ckpt-500")
    assert rewritten.source is not None and rewritten.source.endswith(".restart")
    assert reader.skipped_records == 0


def test_tf2_scalars_raw_tensors_and_text_read_as_tensorflow_reads_them(tf2_dir: Path) -> None:
    reader = _read(tf2_dir)
    expected = read_with_tensorflow(_event_files(tf2_dir))
    assert _as_tensorflow_sees_it(reader) == expected
    assert expected[20] == {
        "loss": 0.25,
        "auc": 0.875,
        "loss_f64": 0.25,
        "examples_i64": 200,
        "batches_i32": 20,
        "checkpoint_path": str(tf2_dir / "model.ckpt-20"),
    }


def test_a_flipped_byte_loses_only_its_record(estimator_dir: Path, tmp_path: Path) -> None:
    source = _event_files(estimator_dir)[0]
    data = bytearray(source.read_bytes())
    middle = len(data) // 2
    data[middle] ^= 0x5A
    damaged = tmp_path / "eval" / source.name
    damaged.parent.mkdir()
    damaged.write_bytes(bytes(data))
    reader = _read(tmp_path)
    intact = _as_tensorflow_sees_it(_read(estimator_dir, event_file_pattern=f"eval/{source.name}"))
    got = _as_tensorflow_sees_it(reader)
    assert reader.skipped_records == 1
    lost = [step for step in intact if got.get(step) != intact[step]]
    assert len(lost) == 1  # one event: a step's metrics or its checkpoint path
    assert all(got[s] == intact[s] for s in intact if s not in lost)


def test_truncated_copies_read_their_complete_prefix_then_the_rest(
    estimator_dir: Path, tmp_path: Path
) -> None:
    source = _event_files(estimator_dir)[0]
    data = source.read_bytes()
    full = _as_tensorflow_sees_it(_read(estimator_dir, event_file_pattern=f"eval/{source.name}"))
    record_starts = [offset for offset, _ in scan_records(data).records]
    copy = tmp_path / "eval" / source.name
    copy.parent.mkdir()
    for cut in (len(data) // 3, len(data) // 2 + 7, len(data) - 1):
        cut_record = max(start for start in record_starts if start <= cut)
        copy.write_bytes(data[:cut])
        reader = _read(tmp_path)
        assert reader.skipped_records == 0
        partial = _as_tensorflow_sees_it(reader)
        assert set(partial) <= set(full)
        with copy.open("ab") as handle:
            handle.write(data[cut:])
        stats = reader.refresh()
        # From the cut record on only, and the few bytes before it that show the file is the
        # one read before.
        assert stats.bytes_read == len(data) - cut_record + TAIL_SIZE
        assert _as_tensorflow_sees_it(reader) == full


def test_garbage_then_more_tensorflow_records_are_found_again(
    estimator_dir: Path, tmp_path: Path
) -> None:
    first, second = _event_files(estimator_dir)
    copy = tmp_path / "eval" / first.name
    copy.parent.mkdir()
    copy.write_bytes(first.read_bytes() + b"\x00" * 100 + b"torn write" * 50)
    reader = _read(tmp_path)
    assert reader.skipped_records == 1
    assert max(r.step for r in reader.results()) == 500
    with copy.open("ab") as handle:
        handle.write(second.read_bytes())  # the restarted evaluator's records, after the damage
    reader.refresh()
    assert reader.skipped_records == 1  # the same damaged region, not counted again
    assert max(r.step for r in reader.results()) == 600


def test_gcs_objects_read_the_same_and_grow_with_ranged_reads(
    estimator_dir: Path, gcs_bucket: tuple[Any, str]
) -> None:
    client, bucket_name = gcs_bucket
    bucket = client.bucket(bucket_name)
    files = _event_files(estimator_dir)
    model_uri = f"gs://{bucket_name}/models/estimator"
    first_bytes = files[0].read_bytes()
    bucket.blob(f"models/estimator/eval/{files[0].name}").upload_from_string(first_bytes[:-40])
    reader = EvalDirReader(GcsStorage(client), model_uri)
    reader.refresh()
    assert reader.result(500).checkpoint_path is None  # its record was cut off
    # GCS objects are rewritten whole when a writer flushes: the new object is longer.
    bucket.blob(f"models/estimator/eval/{files[0].name}").upload_from_string(first_bytes)
    bucket.blob(f"models/estimator/eval/{files[1].name}").upload_from_string(files[1].read_bytes())
    stats = reader.refresh()
    last_record = scan_records(first_bytes).records[-1][0]
    assert stats.bytes_read == (
        len(first_bytes) - last_record + TAIL_SIZE + files[1].stat().st_size
    )
    assert reader.result(500).checkpoint_path is not None
    local = _read(estimator_dir)
    assert [r.metrics for r in reader.results()] == [r.metrics for r in local.results()]
    assert reader.result(600).source == f"{model_uri}/eval/{files[1].name}"


def test_newer_than_exporter_reads_the_newest_committed_export(
    estimator_dir: Path, tmp_path: Path
) -> None:
    import tensorflow as tf

    model_dir = tmp_path / "model"
    shutil.copytree(estimator_dir / "eval", model_dir / "eval")
    wait = parse_eval_wait(newer_than_exporter="best", required_metrics=["auc"])
    storage = LocalStorage()
    reader = EvalDirReader(storage, str(model_dir))
    assert find_eval_result(reader, wait, str(model_dir)).step == 600  # type: ignore[union-attr]

    saved_model = tmp_path / "saved_model"
    module = tf.Module()
    module.scale = tf.Variable(2.0)
    module.serve = tf.function(lambda x: x * module.scale, [tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(saved_model))
    exporter_uri = str(model_dir / "export" / "best")
    for step in (500, 600):
        metadata = ExportMetadata(
            exporter="best",
            strategy="best",
            version=0,
            checkpoint_path=str(model_dir / f"model.ckpt-{step}"),
            global_step=step,
            created_at="2027-01-15T08:00:00Z",
        )
        storage.publish_version(saved_model, exporter_uri, metadata, now_seconds=1_800_000_000)
        found = find_eval_result(reader, wait, str(model_dir))
        if step == 500:
            assert found is not None and found.step == 600
        else:
            assert found is None  # nothing evaluated after the newest export yet
