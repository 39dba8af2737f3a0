"""Checkpoint names and the `checkpoint` state file, read and pruned without TensorFlow.

`tf.train.CheckpointManager` and the TF1 Saver write `<model_dir>/checkpoint`, a text-format
`CheckpointState` proto naming the latest checkpoint and the ones still kept. A checkpoint
`<series>-<step>` (`ckpt-1200`, `model.ckpt-1200`) lives directly in its model dir as
`<name>.index`, `<name>.data-<shard>-of-<shards>` and, from the TF1 Saver, `<name>.meta`.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

STATE_FILENAME = "checkpoint"
# The file whose existence makes a TF checkpoint prefix a checkpoint.
INDEX_SUFFIX = ".index"
# Keras weights files (`model.save_weights("ckpt-<step>.weights.h5")`) are single files.
KERAS_WEIGHTS_SUFFIX = ".weights.h5"

LATEST_FIELD = "model_checkpoint_path"
PATHS_FIELD = "all_model_checkpoint_paths"
TIMESTAMPS_FIELD = "all_model_checkpoint_timestamps"

_FIELD = re.compile(r'^\s*(\w+)\s*:\s*(?:"((?:[^"\\]|\\.)*)"|([-+0-9.eE]+))\s*$')
_STEP_SUFFIX = re.compile(r"-(\d+)$")
# The files of a TF checkpoint: its index, its data shards, and the TF1 Saver's MetaGraph.
_CHECKPOINT_FILE = re.compile(r"^(.+-\d+)\.(?:index|meta|data-\d+-of-\d+)$")


class CheckpointStateError(ValueError):
    """The `checkpoint` state file cannot be parsed."""


@dataclass(frozen=True)
class CheckpointState:
    """The parsed `checkpoint` file: the latest checkpoint prefix and the kept ones."""

    model_checkpoint_path: str
    all_model_checkpoint_paths: tuple[str, ...]

    @property
    def series(self) -> tuple[str, ...]:
        """The series (checkpoint names without `-<step>`) its entries name, sorted."""
        named = (
            checkpoint_series(p)
            for p in (self.model_checkpoint_path, *self.all_model_checkpoint_paths)
        )
        return tuple(sorted({s for s in named if s is not None}))


@dataclass(frozen=True)
class _Field:
    line: int
    key: str
    value: str


def parse_checkpoint_state(text: str, source: str = STATE_FILENAME) -> CheckpointState:
    """Parse the text proto; paths are returned as written (relative or absolute)."""
    latest: str | None = None
    kept: list[str] = []
    for field in _fields(text, source):
        if field.key == LATEST_FIELD:
            latest = field.value
        elif field.key == PATHS_FIELD:
            kept.append(field.value)
    if not latest:
        raise CheckpointStateError(f"{source} names no {LATEST_FIELD}")
    if latest not in kept:
        kept.append(latest)
    return CheckpointState(model_checkpoint_path=latest, all_model_checkpoint_paths=tuple(kept))


def prune_checkpoint_state(text: str, drop: Collection[str], source: str = STATE_FILENAME) -> str:
    """The state file `text` without the `all_model_checkpoint_paths` entries whose checkpoint
    name is in `drop`, nor their `all_model_checkpoint_timestamps` (TF keeps one per path, in
    the same order). Every other line stays as written: the latest checkpoint (never dropped),
    the path style (relative or absolute), `last_preserved_timestamp` and unknown fields.

    CheckpointStateError when the file cannot be parsed, or holds timestamps that are not one
    per path (then which timestamp belongs to which path is unknown).
    """
    latest = parse_checkpoint_state(text, source).model_checkpoint_path
    fields = _fields(text, source)
    paths = [f for f in fields if f.key == PATHS_FIELD]
    stamps = [f for f in fields if f.key == TIMESTAMPS_FIELD]
    if stamps and len(stamps) != len(paths):
        raise CheckpointStateError(
            f"{source} holds {len(stamps)} {TIMESTAMPS_FIELD} for {len(paths)} "
            f"{PATHS_FIELD}; TensorFlow writes one per path"
        )
    doomed = set(drop) - {checkpoint_name(latest)}
    removed = {
        line
        for index, path in enumerate(paths)
        if checkpoint_name(path.value) in doomed
        for line in (path.line, *([stamps[index].line] if stamps else []))
    }
    if not removed:
        return text
    lines = text.splitlines(keepends=True)
    return "".join(line for number, line in enumerate(lines, start=1) if number not in removed)


def _fields(text: str, source: str) -> list[_Field]:
    """Every `key: value` line of the text proto, strings unescaped."""
    fields = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _FIELD.match(line)
        if match is None:
            raise CheckpointStateError(f"{source} line {number} is not a proto field: {line!r}")
        quoted, bare = match.group(2), match.group(3)
        fields.append(
            _Field(number, match.group(1), _unescape(quoted) if quoted is not None else bare)
        )
    return fields


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
    """The checkpoint a file of a model dir belongs to (`model.ckpt-100.meta` ->
    `model.ckpt-100`): its `.index`, `.data-<shard>-of-<shards>` or `.meta` file; else None."""
    match = _CHECKPOINT_FILE.match(filename)
    return match.group(1) if match else None


def checkpoint_series(path: str) -> str | None:
    """The series a checkpoint belongs to: its name without `-<step>` (`gs://b/m/model.ckpt-7`
    -> `model.ckpt`), or None when its name does not end with a step."""
    name = checkpoint_name(path)
    match = _STEP_SUFFIX.search(name)
    return name[: match.start()] if match and match.start() > 0 else None


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)
