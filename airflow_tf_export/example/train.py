"""Train the example model: resume from the latest checkpoint, train more steps, checkpoint.

The checkpoints follow the layout in `example/model.py` (`tf.train.CheckpointManager`,
`ckpt-<global step>`). Training happens in a local working copy for every kind of
`model_dir`, local or `gs://`: the latest checkpoint and the `checkpoint` state file are
copied in, and the new checkpoint is copied out through Storage, data files first, then the
`.index`, then the state file, so a reader that sees the state file finds the checkpoint whole.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from airflow_tf_export.core.checkpoints import (
    STATE_FILENAME,
    checkpoint_name,
    checkpoint_prefix,
    parse_checkpoint_state,
)
from airflow_tf_export.example.model import build_model, loss, make_dataset, make_optimizer
from airflow_tf_export.storage import Storage, StorageNotFoundError, storage_for

TRAIN_EXAMPLES = 4096
TRAIN_SEED = 0


def train(
    *,
    model_dir: str,
    steps: int = 100,
    batch_size: int = 64,
    examples: int = TRAIN_EXAMPLES,
    seed: int = TRAIN_SEED,
) -> dict[str, Any]:
    """Train `steps` more steps and save `ckpt-<global step>`; return its path and step.

    Batches are picked by global step from a fixed synthetic data set, so a resumed run
    trains on the same batches an uninterrupted one would have.
    """
    for label, value in (("steps", steps), ("batch_size", batch_size), ("examples", examples)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if batch_size > examples:
        raise ValueError(f"batch_size {batch_size} is larger than the {examples} examples")
    storage = storage_for(model_dir)
    with tempfile.TemporaryDirectory(prefix="example-train-") as work:
        local = Path(work)
        _copy_in_latest(storage, model_dir, local)
        step, last_loss = _train_locally(local, steps, batch_size, examples, seed)
        prefix = f"ckpt-{step}"
        _copy_out(storage, model_dir, local, prefix)
    return {
        "checkpoint_path": storage.join(model_dir, prefix),
        "global_step": step,
        "loss": last_loss,
    }


def _copy_in_latest(storage: Storage, model_dir: str, local: Path) -> None:
    """The state file and the files of the checkpoint it names, when there is one."""
    try:
        state_text = storage.read_bytes(storage.join(model_dir, STATE_FILENAME))
    except StorageNotFoundError:
        return
    latest = parse_checkpoint_state(state_text.decode("utf-8")).model_checkpoint_path
    latest_name = checkpoint_name(latest)
    names = [
        entry.name
        for entry in storage.list_dir(model_dir)
        if not entry.is_dir and checkpoint_prefix(entry.name) == latest_name
    ]
    storage.download_dir(model_dir, local, names)
    (local / STATE_FILENAME).write_bytes(state_text)


def _train_locally(
    local: Path, steps: int, batch_size: int, examples: int, seed: int
) -> tuple[int, float]:
    import tensorflow as tf

    model = build_model()
    optimizer = make_optimizer()
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(local), max_to_keep=None)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    features, labels = make_dataset(examples, seed)
    inputs = {name: tf.constant(values) for name, values in features.items()}
    targets = tf.constant(labels)

    @tf.function
    def train_step(batch: dict[str, Any], batch_labels: Any) -> Any:
        with tf.GradientTape() as tape:
            value = loss(batch_labels, model(batch, training=True))
        gradients = tape.gradient(value, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        step.assign_add(1)
        return value

    last_loss = float("nan")
    for _ in range(steps):
        start = (int(step.numpy()) * batch_size) % (examples - batch_size + 1)
        batch = {name: values[start : start + batch_size] for name, values in inputs.items()}
        last_loss = float(train_step(batch, targets[start : start + batch_size]))
    global_step = int(step.numpy())
    manager.save(checkpoint_number=global_step)
    return global_step, last_loss


def _copy_out(storage: Storage, model_dir: str, local: Path, prefix: str) -> None:
    """Data files, then the index, then the state file (each upload a separate step)."""
    files = sorted(p for p in local.iterdir() if checkpoint_prefix(p.name) == prefix)
    data = [p for p in files if not p.name.endswith(".index")]
    index = [p for p in files if p.name.endswith(".index")]
    for batch in (data, index):
        with tempfile.TemporaryDirectory(prefix="example-upload-") as outbox:
            for path in batch:
                shutil.copy2(path, Path(outbox) / path.name)
            storage.upload_dir(Path(outbox), model_dir)
    storage.write_bytes(
        storage.join(model_dir, STATE_FILENAME), (local / STATE_FILENAME).read_bytes()
    )
