"""Finding the awaited eval result in real event files (and the exporter dir it may compare
with); the decision itself is tested in tests/unit/core/test_eval_wait.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from airflow_tf_export.core.eval_wait import EvalWait, parse_eval_wait
from airflow_tf_export.core.strategies import Candidate, LatestStrategy
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.eval_search import find_eval_result
from airflow_tf_export.storage.base import WrittenModel
from airflow_tf_export.storage.export_flow import export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.local import LocalStorage

from .event_builders import checkpoint_event, simple_value_event, write_events


def test_find_eval_result_reads_the_event_files(tmp_path: Path) -> None:
    write_events(
        tmp_path / "eval/events.out.tfevents.1.host",
        [simple_value_event(100, {"loss": 0.5}), checkpoint_event(100, "/m/model.ckpt-100")],
    )
    reader = EvalDirReader(LocalStorage(), str(tmp_path))
    wait = parse_eval_wait(checkpoint_path="/m/model.ckpt-100")
    found = find_eval_result(reader, wait, str(tmp_path))
    assert found is not None and found.step == 100
    assert isinstance(wait, EvalWait) and wait.describe_target() == "checkpoint /m/model.ckpt-100"


def _export_step(exporter_uri: str, step: int) -> None:
    """Publish a placeholder version of `step` (the wait reads only its metadata)."""

    def write(staging: Path) -> WrittenModel:
        (staging / "saved_model.pb").write_bytes(b"pb")
        return WrittenModel()

    candidate = Candidate(f"/m/model.ckpt-{step}", step)
    exporter = ExporterDir(LocalStorage(), exporter_uri)
    assert export_with_strategy(exporter, LatestStrategy(name="best"), candidate, write).exported


def test_newer_than_exporter_reads_a_custom_export_dir_base(tmp_path: Path) -> None:
    write_events(
        tmp_path / "model/eval/events.out.tfevents.1.host",
        [simple_value_event(step, {"loss": 1 / step}) for step in (100, 200)],
    )
    model_dir, custom = str(tmp_path / "model"), str(tmp_path / "exports/best")
    _export_step(custom, 200)
    reader = EvalDirReader(LocalStorage(), model_dir)
    default_dir = parse_eval_wait(newer_than_exporter="best")
    assert find_eval_result(reader, default_dir, model_dir).step == 200  # type: ignore[union-attr]
    in_custom = parse_eval_wait(newer_than_exporter="best", export_dir_base=custom)
    assert find_eval_result(reader, in_custom, model_dir) is None


def test_newer_than_exporter_counts_the_estimator_s_exports(tmp_path: Path) -> None:
    """An exporter dir holding a real tf.estimator export of step 125 (a foreign version): a
    wait for a step newer than the exporter's does not end on step 125, nor below it."""
    linear = Path(__file__).resolve().parents[2] / "data/estimator/linear_classifier"
    (step_125,) = [
        d["latest"]
        for d in json.loads((linear / "reference/decisions.json").read_text())
        if d["step"] == 125
    ]
    model_dir = tmp_path / "model"
    shutil.copytree(
        linear / "model_dir/export/latest" / step_125,
        model_dir / "export/latest" / step_125,
    )
    events = model_dir / "eval/events.out.tfevents.1.host"
    write_events(events, [simple_value_event(step, {"loss": 0.5}) for step in (100, 125)])
    wait = parse_eval_wait(newer_than_exporter="latest")
    reader = EvalDirReader(LocalStorage(), str(model_dir))
    assert find_eval_result(reader, wait, str(model_dir)) is None
    assert reader.min_step == 126  # nothing at or below the Estimator's step is decoded
    write_events(events, [simple_value_event(step, {"loss": 0.5}) for step in (100, 125, 150)])
    found = find_eval_result(EvalDirReader(LocalStorage(), str(model_dir)), wait, str(model_dir))
    assert found is not None and found.step == 150


def test_newer_than_exporter_skips_an_indexed_version_that_lost_a_file(tmp_path: Path) -> None:
    """The newest export (step 200) lost its SavedModel after the index recorded it, its
    record untouched: it is not committed, so the exporter holds step 100 and a result at
    step 150 ends the wait, as it does without an index (where the export would publish it)."""
    model_dir = tmp_path / "model"
    exporter = model_dir / "export/best"
    for step in (100, 200):
        _export_step(str(exporter), step)
    indexed = ExporterDir(LocalStorage(), str(exporter))
    indexed.write_index(indexed.scan())  # as the next export or retention writes it
    newest = max((p for p in exporter.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    (newest / "saved_model.pb").unlink()
    write_events(
        model_dir / "eval/events.out.tfevents.1.host",
        [simple_value_event(step, {"loss": 1 / step}) for step in (100, 150)],
    )
    wait = parse_eval_wait(newer_than_exporter="best")
    found = find_eval_result(EvalDirReader(LocalStorage(), str(model_dir)), wait, str(model_dir))
    assert found is not None and found.step == 150
