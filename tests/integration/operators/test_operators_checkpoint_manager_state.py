"""Checkpoint retention on a model dir written by tf.train.CheckpointManager (the example
training), on local disk and the GCS emulator: the pruned state file keeps one timestamp per
listed checkpoint and `last_preserved_timestamp`, and TensorFlow resumes from it: a new
CheckpointManager recovers exactly the kept checkpoints and saves the next one after them."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from airflow.sdk.execution_time.context import OutletEventAccessors
from operator_support import ModelDir

from airflow_tf_export.operators.retention import RetentionOperator


def context() -> Any:
    ti = SimpleNamespace(dag_id="dag", run_id="run-1", task_id="retention", try_number=1)
    return {"ti": ti, "outlet_events": OutletEventAccessors()}


def download(model_dir: ModelDir) -> Path:
    local = Path(tempfile.mkdtemp(prefix="model-"))
    names = [e.name for e in model_dir.storage.list_dir(model_dir.uri) if not e.is_dir]
    model_dir.storage.download_dir(model_dir.uri, local, names)
    return local


def test_a_pruned_checkpoint_manager_state_file_resumes_training(model_dir: ModelDir) -> None:
    import tensorflow as tf

    from airflow_tf_export.example.model import build_model

    before = tf.train.get_checkpoint_state(str(download(model_dir)))
    stamps = dict(
        zip(
            [Path(p).name for p in before.all_model_checkpoint_paths],
            before.all_model_checkpoint_timestamps,
            strict=True,
        )
    )
    assert len(stamps) >= 2 and before.last_preserved_timestamp > 0

    done = RetentionOperator(
        task_id="retention", model_dir=model_dir.uri, checkpoints_to_keep=1
    ).execute(context())["checkpoints"]
    assert [d["step"] for d in done["delete"]] == [20, 40]
    assert done["state_file"]["outcome"] == "rewritten"

    local = download(model_dir)
    assert sorted(p.name for p in local.iterdir() if p.name.startswith("ckpt-")) == [
        "ckpt-60.data-00000-of-00001",
        "ckpt-60.index",
    ]
    after = tf.train.get_checkpoint_state(str(local))
    assert after.model_checkpoint_path == str(local / "ckpt-60")
    assert list(after.all_model_checkpoint_paths) == [str(local / "ckpt-60")]
    assert list(after.all_model_checkpoint_timestamps) == [stamps["ckpt-60"]]
    assert after.last_preserved_timestamp == before.last_preserved_timestamp

    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=build_model(), step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(local), max_to_keep=3)
    assert manager.checkpoints == [str(local / "ckpt-60")]
    checkpoint.restore(manager.latest_checkpoint).expect_partial()
    assert int(step.numpy()) == 60
    manager.save(checkpoint_number=61)
    assert manager.checkpoints == [str(local / "ckpt-60"), str(local / "ckpt-61")]
