"""Eval event files written by TensorFlow itself, as an evaluator writes them.

Importable (the functions import TensorFlow when called) and runnable as a script, so DAG
tests can grow an event file from another process while a sensor waits:

    python tf_event_writer.py EVAL_DIR DELAY_SECONDS '[[step, {"loss": 0.5}, "ckpt"], ...]'

writes the evaluations one by one, Estimator style, sleeping DELAY_SECONDS before each.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

Evaluation = tuple[int, Mapping[str, float], str | None]


def estimator_event_file(
    eval_dir: Path,
    evaluations: Iterable[Evaluation],
    *,
    filename_suffix: str = "",
    delay: float = 0.0,
) -> Path:
    """What Estimator's evaluator wrote with `tf.compat.v1.summary.FileWriter`: one event of
    `simple_value`s per evaluation, then a `checkpoint_path` string tensor summary."""
    import tensorflow as tf

    summary_pb2 = tf.compat.v1.Summary
    with tf.Graph().as_default():
        writer = tf.compat.v1.summary.FileWriter(str(eval_dir), filename_suffix=filename_suffix)
        for step, metrics, checkpoint_path in evaluations:
            time.sleep(delay)
            values = [summary_pb2.Value(tag=tag, simple_value=v) for tag, v in metrics.items()]
            writer.add_summary(summary_pb2(value=values), step)
            if checkpoint_path is not None:
                path_summary = summary_pb2()
                path_summary.value.add(
                    tag="checkpoint_path",
                    tensor=tf.make_tensor_proto(checkpoint_path, dtype=tf.string),
                )
                writer.add_summary(path_summary, step)
            writer.flush()
        writer.close()
    return _newest_event_file(eval_dir)


def tf2_event_file(eval_dir: Path, evaluations: Iterable[Evaluation]) -> Path:
    """A TF2 evaluator: `tf.summary.scalar` per metric, raw double/int64/int32 tensors via
    `tf.summary.write`, and the checkpoint path via `tf.summary.text`."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(eval_dir))
    with writer.as_default():
        for step, metrics, checkpoint_path in evaluations:
            for tag, value in metrics.items():
                tf.summary.scalar(tag, value, step=step)
            tf.summary.write("loss_f64", tf.constant(metrics["loss"], tf.float64), step=step)
            tf.summary.write("examples_i64", tf.constant(step * 10, tf.int64), step=step)
            tf.summary.write("batches_i32", tf.constant(step, tf.int32), step=step)
            if checkpoint_path is not None:
                tf.summary.text("checkpoint_path", checkpoint_path, step=step)
    writer.flush()
    writer.close()
    return _newest_event_file(eval_dir)


def read_with_tensorflow(paths: Iterable[Path]) -> dict[int, dict[str, Any]]:
    """Per step, every scalar and string value as TensorFlow's own reader sees it (files in
    the order given, later values overwriting earlier ones)."""
    import tensorflow as tf

    steps: dict[int, dict[str, Any]] = {}
    for path in paths:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    steps.setdefault(event.step, {})[value.tag] = value.simple_value
                elif value.HasField("tensor"):
                    array = tf.make_ndarray(value.tensor)
                    item = array.item() if array.size == 1 else None
                    if isinstance(item, bytes):
                        item = item.decode()
                    steps.setdefault(event.step, {})[value.tag] = item
    return steps


def _newest_event_file(eval_dir: Path) -> Path:
    return max(eval_dir.glob("*.tfevents.*"), key=lambda p: p.stat().st_mtime_ns)


if __name__ == "__main__":
    target, pause, planned = Path(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
    target.mkdir(parents=True, exist_ok=True)
    estimator_event_file(target, [(s, m, c) for s, m, c in planned], delay=pause)
