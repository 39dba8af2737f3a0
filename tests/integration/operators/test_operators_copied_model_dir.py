"""A model dir copied elsewhere (another local path, or local disk to GCS) after it was
evaluated: its eval events record each checkpoint at the old absolute location, which no
longer exists. The sensor's search finds the eval result by checkpoint name, and the best
export restores the copy's checkpoint of that name, on local disk and the GCS emulator.

The checkpoints are the example model's (trained by TensorFlow); the eval events are written
by tf.summary, with the `checkpoint_path` text summary an Estimator evaluation writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors
from operator_support import EVAL_METRICS, ModelDir, classify, copy_model_dir, load_version

from airflow_tf_export.core.eval_wait import parse_eval_wait
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.eval_search import find_eval_result
from airflow_tf_export.operators.export import BestExportOperator
from airflow_tf_export.storage.exporter_dir import ExporterDir

DEFINITION = "airflow_tf_export.example.model:definition"


def context() -> Any:
    ti = SimpleNamespace(dag_id="dag", run_id="run-1", task_id="export", try_number=1, map_index=-1)
    return {"ti": ti, "outlet_events": OutletEventAccessors()}


def write_evaluations(model_dir: Path) -> None:
    """One evaluation per step: its metrics and the evaluated checkpoint's absolute path."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(model_dir / "eval"))
    with writer.as_default():
        for step, metrics in EVAL_METRICS.items():
            for name, value in metrics.items():
                tf.summary.scalar(name, value, step=step)
            tf.summary.text("checkpoint_path", str(model_dir / f"ckpt-{step}"), step=step)
    writer.close()


@pytest.fixture(params=["local", "gcs"])
def copied(
    request: pytest.FixtureRequest,
    trained_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[ModelDir, Path]:
    """The trained model dir, evaluated at `old`, copied to local disk or GCS; `old` is
    then removed."""
    old = tmp_path / "old" / "model"
    shutil.copytree(trained_model_dir, old, ignore=shutil.ignore_patterns("eval"))
    write_evaluations(old)
    model_dir = copy_model_dir(request, old, tmp_path, monkeypatch)
    shutil.rmtree(old)
    return model_dir, old


def test_best_exports_the_copys_checkpoint_of_an_eval_result_recorded_at_the_old_place(
    copied: tuple[ModelDir, Path],
) -> None:
    model_dir, old = copied
    wait = parse_eval_wait(checkpoint_path=model_dir.join("ckpt-40"), required_metrics=["loss"])
    reader = EvalDirReader(model_dir.storage, model_dir.uri, "eval/*.tfevents.*")
    found = find_eval_result(reader, wait, model_dir.uri)
    assert found is not None
    assert (found.step, found.checkpoint_path) == (40, str(old / "ckpt-40"))
    assert not (old / "ckpt-40.index").exists()

    result = BestExportOperator(
        task_id="export",
        name="best",
        model_definition=DEFINITION,
        model_dir=model_dir.uri,
        eval_result=found.to_dict(),
    ).execute(context())
    assert result["exported"] is True
    assert (result["checkpoint_path"], result["global_step"]) == (model_dir.join("ckpt-40"), 40)
    (meta,) = ExporterDir(model_dir.storage, model_dir.join("export", "best")).committed()
    assert (meta.checkpoint_path, meta.global_step) == (model_dir.join("ckpt-40"), 40)
    assert meta.eval_result is not None and meta.eval_result.checkpoint_path == str(old / "ckpt-40")
    loaded = load_version(model_dir.storage, model_dir.join("export", "best", str(meta.version)))
    scores = classify(loaded, [25, 70], ["german", "x"])["scores"].numpy()
    assert scores.shape == (2, 2)
    assert abs(float(scores.sum()) - 2.0) < 1e-4
