"""Checkpoint names and the `checkpoint` state file, read without TensorFlow.

`tf.train.CheckpointManager` and the TF1 Saver write `<model_dir>/checkpoint`, a text-format
`CheckpointState` proto naming the latest checkpoint and the ones still kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATE_FILENAME = "checkpoint"
# Keras weights files (`model.save_weights("ckpt-<step>.weights.h5")`) are single files.
KERAS_WEIGHTS_SUFFIX = ".weights.h5"

_FIELD = re.compile(r'^\s*(\w+)\s*:\s*(?:"((?:[^"\\]|\\.)*)"|([-+0-9.eE]+))\s*$')
_STEP_SUFFIX = re.compile(r"-(\d+)$")


class CheckpointStateError(ValueError):
    """The `checkpoint` state file cannot be parsed."""


@dataclass(frozen=True)
class CheckpointState:
    """The parsed `checkpoint` file: the latest checkpoint prefix and the kept ones."""

    model_checkpoint_path: str
    all_model_checkpoint_paths: tuple[str, ...]


def parse_checkpoint_state(text: str, source: str = STATE_FILENAME) -> CheckpointState:
    """Parse the text proto; paths are returned as written (relative or absolute)."""
    latest: str | None = None
    kept: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _FIELD.match(line)
        if match is None:
            raise CheckpointStateError(f"{source} line {number} is not a proto field: {line!r}")
        key, quoted = match.group(1), match.group(2)
        if key == "model_checkpoint_path":
            latest = _unescape(quoted or "")
        elif key == "all_model_checkpoint_paths":
            kept.append(_unescape(quoted or ""))
    if not latest:
        raise CheckpointStateError(f"{source} names no model_checkpoint_path")
    if latest not in kept:
        kept.append(latest)
    return CheckpointState(model_checkpoint_path=latest, all_model_checkpoint_paths=tuple(kept))


def checkpoint_name(path: str) -> str:
    """The last segment of a checkpoint's path or URI (`gs://b/run/ckpt-1` -> `ckpt-1`)."""
    return path.rstrip("/").rsplit("/", 1)[-1]


def checkpoint_step(prefix: str) -> int | None:
    """The number a checkpoint prefix ends with (`ckpt-1200`, `model.ckpt-1200`), or None."""
    match = _STEP_SUFFIX.search(checkpoint_name(prefix))
    return int(match.group(1)) if match else None


def is_keras_weights(path: str) -> bool:
    """Whether `path` names a Keras weights file (`<name>.weights.h5`), not a TF prefix."""
    return path.rstrip("/").endswith(KERAS_WEIGHTS_SUFFIX)


def keras_weights_step(path: str) -> int | None:
    """The number before `.weights.h5` (`ckpt-1200.weights.h5` -> 1200), or None when the
    name is not `<name>-<step>.weights.h5`."""
    if not is_keras_weights(path):
        return None
    return checkpoint_step(path.rstrip("/")[: -len(KERAS_WEIGHTS_SUFFIX)])


def step_in_name(path: str) -> int | None:
    """The global step a checkpoint is named for: `ckpt-1200` or `ckpt-1200.weights.h5`."""
    return keras_weights_step(path) if is_keras_weights(path) else checkpoint_step(path)


def checkpoint_prefix(filename: str) -> str | None:
    """The checkpoint prefix a checkpoint data or index file belongs to, or None."""
    for suffix in (".index", ".data-"):
        head, sep, _ = filename.partition(suffix)
        if sep and checkpoint_step(head) is not None:
            return head
    return None


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)
