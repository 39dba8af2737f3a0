"""Which local checkpoint to export: the one given, or the latest one of a model directory.

Paths only (no TensorFlow). The latest checkpoint is found by the product's one resolver,
storage.checkpoints, through LocalStorage; what is added here is TF-writer specific: a Keras
`.weights.h5` file counts as a checkpoint too.
"""

from __future__ import annotations

import os

from airflow_tf_export.core.checkpoints import INDEX_SUFFIX, KERAS_WEIGHTS_SUFFIX
from airflow_tf_export.savedmodel.errors import CheckpointError
from airflow_tf_export.storage.checkpoints import checkpoint_file, recorded_checkpoint
from airflow_tf_export.storage.local import LocalStorage


def resolve_checkpoint(model_dir: str, checkpoint_path: str | None) -> str:
    """The checkpoint to export: `checkpoint_path` if given (a TF checkpoint prefix or a
    Keras weights file), else the latest one the state file of `model_dir` records."""
    if checkpoint_path:
        require_checkpoint(checkpoint_path)
        return checkpoint_path
    return recorded_checkpoint(LocalStorage(), os.path.abspath(model_dir))


def checkpoint_exists(path: str) -> bool:
    """A TF checkpoint prefix with its `.index` file, or a Keras `.weights.h5` file."""
    return os.path.isfile(checkpoint_file(path))


def require_checkpoint(path: str) -> None:
    """Raise CheckpointError naming `path` unless a checkpoint exists there."""
    if not checkpoint_exists(path):
        raise CheckpointError(
            f"no checkpoint at {path}: expected {path}{INDEX_SUFFIX} (a TensorFlow checkpoint "
            f"prefix) or a file ending in {KERAS_WEIGHTS_SUFFIX}",
            path,
        )
