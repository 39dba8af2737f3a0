"""Which checkpoint of a model directory to export, found through the Storage protocol.

The one checkpoint resolver of the product, for local disk and GCS alike: the operators call
it with the model dir's backend and savedmodel with LocalStorage. The `checkpoint` state file
is parsed by core.checkpoints; a TF checkpoint prefix exists when its `.index` file does.
A Keras weights file (`<name>-<step>.weights.h5`) is a checkpoint of its own: it exists when
that one file does. Keras writes no state file, so it is only used when named explicitly
(an operator's checkpoint_path, an eval result's, or the backfill's selection).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_tf_export.core.checkpoints import (
    KERAS_WEIGHTS_SUFFIX,
    STATE_FILENAME,
    CheckpointState,
    CheckpointStateError,
    checkpoint_name,
    checkpoint_prefix,
    checkpoint_step,
    is_keras_weights,
    parse_checkpoint_state,
    step_in_name,
)
from airflow_tf_export.storage.base import (
    BucketNotFoundError,
    Entry,
    Storage,
    StorageNotFoundError,
)

INDEX_SUFFIX = ".index"


class CheckpointError(ValueError):
    """A checkpoint is missing or unreadable (retrying cannot help); `path` names it."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class StoredCheckpoint:
    """A checkpoint directly in a model dir: its URI (a TF checkpoint prefix or a Keras
    weights file), the global step in its name, the names of its files and the modification
    time of `checkpoint_file(uri)`. `complete` is False when that file is missing: data files
    a delete or a write left behind."""

    uri: str
    step: int
    files: tuple[str, ...]
    complete: bool
    mtime: float | None


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """A checkpoint of the model dir (as a URI: a TF checkpoint prefix or a Keras weights
    file) and the global step in its name."""

    path: str
    step: int


def resolve_checkpoint(
    storage: Storage, model_dir: str, checkpoint_path: str | None, *, step: int | None = None
) -> ResolvedCheckpoint:
    """The checkpoint to export: `checkpoint_path` if given (relative to `model_dir` unless
    absolute; a TF checkpoint prefix or a Keras `.weights.h5` file), else
    `recorded_checkpoint(storage, model_dir, step=step)`. Its name must end with its global
    step, as tf.train.CheckpointManager names checkpoints (`ckpt-1200`), or as
    `ckpt-1200.weights.h5` for a Keras weights file."""
    if checkpoint_path:
        prefix = _absolute(storage, model_dir, checkpoint_path)
        if not _is_checkpoint(storage, prefix):
            raise CheckpointError(
                f"checkpoint {prefix!r} not found: {checkpoint_file(prefix)} does not exist",
                prefix,
            )
    else:
        prefix = recorded_checkpoint(storage, model_dir, step=step)
    found = step_in_name(prefix)
    if found is None and is_keras_weights(prefix):
        raise CheckpointError(
            f"Keras weights file {prefix!r} is not named for its global step: save it "
            f"as '<name>-<global step>{KERAS_WEIGHTS_SUFFIX}' (e.g. "
            f"model.save_weights('ckpt-1200{KERAS_WEIGHTS_SUFFIX}'))",
            prefix,
        )
    if found is None:
        raise CheckpointError(
            f"checkpoint {prefix!r} does not end with its global step (e.g. ckpt-1200): save "
            "it with tf.train.CheckpointManager.save(checkpoint_number=<global step>)",
            prefix,
        )
    return ResolvedCheckpoint(prefix, found)


def checkpoint_file(checkpoint: str) -> str:
    """The file whose existence makes `checkpoint` a checkpoint: a Keras weights file itself,
    else the TF checkpoint prefix's `.index` file."""
    return checkpoint if is_keras_weights(checkpoint) else checkpoint + INDEX_SUFFIX


def checkpoint_files(storage: Storage, checkpoint: str) -> tuple[str, list[str]]:
    """The directory of `checkpoint` and the names of the files in it that make it up: the
    Keras weights file itself, or the TF checkpoint prefix's `.index` and `.data-*` files."""
    parent, _, base = checkpoint.rstrip("/").rpartition("/")
    if is_keras_weights(base):
        return parent, [base]
    names = [
        e.name
        for e in storage.list_dir(parent)
        if not e.is_dir and checkpoint_prefix(e.name) == base
    ]
    return parent, names


def list_checkpoints(
    storage: Storage, model_dir: str, *, keras_weights: bool = False
) -> list[StoredCheckpoint]:
    """The checkpoints of one kind directly in `model_dir`, by step: TF checkpoint prefixes
    (their `.index` and `.data-*` files), or with `keras_weights` the Keras
    `<name>-<step>.weights.h5` files. One kind at a time: a TF model dir may hold weights
    files of another kind of step (epochs), or pretrained ones, that are not its checkpoints."""
    groups: dict[tuple[str, int], list[Entry]] = {}
    for entry in storage.list_dir(model_dir):
        named = None if entry.is_dir else _checkpoint_of(entry.name)
        if named is not None and is_keras_weights(named[0]) == keras_weights:
            groups.setdefault(named, []).append(entry)
    found = []
    for (name, step), entries in groups.items():
        defining = [e for e in entries if e.name == checkpoint_file(name)]
        found.append(
            StoredCheckpoint(
                uri=storage.join(model_dir, name),
                step=step,
                files=tuple(sorted(e.name for e in entries)),
                complete=bool(defining),
                mtime=defining[0].mtime if defining else None,
            )
        )
    return sorted(found, key=lambda c: (c.step, c.uri))


def _checkpoint_of(filename: str) -> tuple[str, int] | None:
    """The checkpoint a file of a model dir belongs to (a Keras weights file is its own) and
    the step in its name; None for other files."""
    name = filename if is_keras_weights(filename) else checkpoint_prefix(filename)
    step = None if name is None else step_in_name(name)
    return None if name is None or step is None else (name, step)


def recorded_checkpoint(storage: Storage, model_dir: str, *, step: int | None = None) -> str:
    """The checkpoint prefix the model dir's state file records: the kept checkpoint of
    `step` when the file still lists one, else the latest.

    A state file copied together with its directory (e.g. from local disk to GCS) records
    paths of the old location; the checkpoint is then looked up by its name in `model_dir`.
    """
    state = read_checkpoint_state(storage, model_dir)
    if state is None:
        raise CheckpointError(
            f"no checkpoint in {model_dir}: {storage.join(model_dir, STATE_FILENAME)} does not "
            "exist; pass checkpoint_path or train first (Keras weights files, "
            f"`<name>-<step>{KERAS_WEIGHTS_SUFFIX}`, always need an explicit checkpoint_path: "
            "Keras writes no checkpoint state file)",
            model_dir,
        )
    at_step = [
        p
        for p in state.all_model_checkpoint_paths
        if step is not None and checkpoint_step(p) == step
    ]
    recorded = at_step[-1] if at_step else state.model_checkpoint_path
    candidates = [_absolute(storage, model_dir, recorded)]
    by_name = storage.join(model_dir, checkpoint_name(recorded))
    if by_name not in candidates:
        candidates.append(by_name)
    for candidate in candidates:
        if _is_checkpoint(storage, candidate):
            return candidate
    raise CheckpointError(
        f"{storage.join(model_dir, STATE_FILENAME)} names checkpoint {recorded!r}, but no "
        f"checkpoint exists at {' or '.join(candidates)}",
        recorded,
    )


def read_checkpoint_state(storage: Storage, model_dir: str) -> CheckpointState | None:
    """The model dir's parsed `checkpoint` state file, or None when there is none."""
    state_uri = storage.join(model_dir, STATE_FILENAME)
    try:
        text = storage.read_bytes(state_uri).decode("utf-8")
    except StorageNotFoundError:
        return None
    except (BucketNotFoundError, UnicodeDecodeError) as err:
        # Bad input; any other StorageError (an outage) stays retryable.
        raise CheckpointError(
            f"cannot read the checkpoint state file {state_uri}: {err}", state_uri
        ) from None
    try:
        return parse_checkpoint_state(text, source=state_uri)
    except CheckpointStateError as err:
        raise CheckpointError(
            f"cannot read the checkpoint state file {state_uri}: {err}", state_uri
        ) from None


def _absolute(storage: Storage, model_dir: str, path: str) -> str:
    """`path` when it is a URI or absolute path, else `model_dir/path`."""
    if path.startswith("/") or "://" in path:
        return path.rstrip("/")
    return storage.join(model_dir, path)


def _is_checkpoint(storage: Storage, prefix: str) -> bool:
    """Whether `checkpoint_file(prefix)` exists; a URI this backend cannot reach (a recorded
    path of another backend) holds no checkpoint for it."""
    try:
        return storage.exists(checkpoint_file(prefix))
    except ValueError:
        return False
