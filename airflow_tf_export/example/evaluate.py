"""Evaluate a checkpoint of the example model and record it as Estimator's evaluator did.

The checkpoint is a tf.train.Checkpoint prefix or a Keras `<name>-<step>.weights.h5` file,
found by the product's one resolver (default: the latest).

One event per evaluation in `model_dir/eval/events.out.tfevents.*`, at step = the global
step, holding `loss`, `accuracy` and `auc` as scalar values and `checkpoint_path` as a
string tensor. The event file is written locally and then copied into the model dir through
Storage, so the same code serves local and `gs://` model dirs.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_tf_export.core.checkpoints import checkpoint_name, is_keras_weights, step_in_name
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.example.model import accuracy, build_model, loss, make_dataset
from airflow_tf_export.storage import Storage, storage_for
from airflow_tf_export.storage.checkpoints import checkpoint_files, resolve_checkpoint

EVAL_DIR = "eval"
EVAL_EXAMPLES = 2048
EVAL_SEED = 1


def evaluate(
    *,
    model_dir: str,
    checkpoint_path: str | None = None,
    examples: int = EVAL_EXAMPLES,
    seed: int = EVAL_SEED,
) -> dict[str, Any]:
    """Evaluate `checkpoint_path` (default: the latest checkpoint) on held-out synthetic
    data, write the eval event and return the result (`EvalResult.to_dict()`)."""
    if isinstance(examples, bool) or not isinstance(examples, int) or examples <= 0:
        raise ValueError(f"examples must be a positive integer, got {examples!r}")
    storage = storage_for(model_dir)
    prefix = resolve_checkpoint(storage, model_dir, checkpoint_path).path
    with tempfile.TemporaryDirectory(prefix="example-eval-") as work:
        local = Path(work)
        step, metrics = _evaluate_locally(storage, prefix, examples, seed)
        events = local / EVAL_DIR
        event_file = _write_eval_event(events, step, metrics, prefix)
        storage.upload_dir(events, storage.join(model_dir, EVAL_DIR))
    result = EvalResult(
        step=step,
        metrics=metrics,
        checkpoint_path=prefix,
        wall_time=time.time(),
        source=storage.join(model_dir, EVAL_DIR, event_file),
    )
    return result.to_dict()


def _evaluate_locally(
    storage: Storage, prefix: str, examples: int, seed: int
) -> tuple[int, dict[str, float]]:
    import keras
    import tensorflow as tf

    model = build_model()
    name = checkpoint_name(prefix)
    parent, files = checkpoint_files(storage, prefix)
    with storage.local_files(parent, files) as local:
        if is_keras_weights(name):
            model.load_weights(str(local / name))
            step = tf.Variable(step_in_name(name), dtype=tf.int64)
        else:
            step = tf.Variable(0, dtype=tf.int64)
            restored = tf.train.Checkpoint(model=model, step=step).restore(str(local / name))
            restored.expect_partial().assert_existing_objects_matched()
    features, labels = make_dataset(examples, seed)
    probabilities = model({k: tf.constant(v) for k, v in features.items()}, training=False)
    targets = tf.constant(labels)
    auc = keras.metrics.AUC()
    auc.update_state(labels, probabilities[:, 0])
    metrics = {
        "loss": float(loss(targets, probabilities)),
        "accuracy": float(accuracy(targets, probabilities)),
        "auc": float(auc.result()),
    }
    return int(step.numpy()), metrics


def _write_eval_event(
    events: Path, step: int, metrics: dict[str, float], checkpoint_path: str
) -> str:
    """Write one event holding every metric and the checkpoint path; its file name."""
    import tensorflow as tf

    summary = tf.compat.v1.Summary()
    for tag, value in sorted(metrics.items()):
        summary.value.add(tag=tag, simple_value=value)
    summary.value.add(tag="checkpoint_path", tensor=tf.make_tensor_proto(checkpoint_path))
    writer = tf.summary.create_file_writer(str(events))
    with writer.as_default():
        tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)
    writer.close()
    (event_file,) = (p.name for p in events.iterdir())
    return event_file
