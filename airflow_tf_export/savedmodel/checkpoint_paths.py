"""Which local checkpoint to export: the one given, or the latest one of a model directory.

Paths only (no TensorFlow). The `checkpoint` state file is parsed by core.checkpoints, the
one parser in the product.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow_tf_export.core.checkpoints import (
    STATE_FILENAME,
    CheckpointStateError,
    checkpoint_step,
    parse_checkpoint_state,
)
from airflow_tf_export.savedmodel.errors import CheckpointError

KERAS_WEIGHTS_SUFFIX = ".weights.h5"


def resolve_checkpoint(model_dir: str, checkpoint_path: str | None) -> str:
    """The checkpoint to export: `checkpoint_path` if given, else the latest in `model_dir`.

    A state file copied together with its directory (e.g. downloaded from GCS) may record
    paths that no longer exist as written; the checkpoint is then looked up by its file name
    in `model_dir`.
    """
    if checkpoint_path:
        require_checkpoint(checkpoint_path)
        return checkpoint_path
    state_file = Path(model_dir) / STATE_FILENAME
    try:
        text = state_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(
            f"no checkpoint in {model_dir}: {state_file} does not exist", model_dir
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(f"cannot read {state_file}: {error}", str(state_file)) from error
    try:
        recorded = parse_checkpoint_state(text, str(state_file)).model_checkpoint_path
    except CheckpointStateError as error:
        raise CheckpointError(str(error), str(state_file)) from error
    candidates = [os.path.join(model_dir, recorded)]
    by_name = os.path.join(model_dir, os.path.basename(recorded.rstrip("/")))
    if by_name not in candidates:
        candidates.append(by_name)
    for candidate in candidates:
        if checkpoint_exists(candidate):
            return candidate
    raise CheckpointError(
        f"{state_file} names checkpoint {recorded!r}, but no checkpoint exists at "
        f"{' or '.join(candidates)}",
        recorded,
    )


def checkpoint_exists(path: str) -> bool:
    """A TF checkpoint prefix with its `.index` file, or a Keras `.weights.h5` file."""
    if path.endswith(KERAS_WEIGHTS_SUFFIX):
        return os.path.isfile(path)
    return os.path.isfile(path + ".index")


def require_checkpoint(path: str) -> None:
    """Raise CheckpointError naming `path` unless a checkpoint exists there."""
    if not checkpoint_exists(path):
        raise CheckpointError(
            f"no checkpoint at {path}: expected {path}.index (a TensorFlow checkpoint prefix) "
            f"or a file ending in {KERAS_WEIGHTS_SUFFIX}",
            path,
        )


def step_from_name(path: str) -> int | None:
    """The step a checkpoint's name ends with (`ckpt-1200`, `ckpt-1200.weights.h5`), or None."""
    if path.endswith(KERAS_WEIGHTS_SUFFIX):
        path = path[: -len(KERAS_WEIGHTS_SUFFIX)]
    return checkpoint_step(path)
