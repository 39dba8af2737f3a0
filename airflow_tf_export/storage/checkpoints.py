"""Which checkpoint of a model directory to export, found through the Storage protocol.

The one checkpoint resolver of the product, for local disk and GCS alike: the operators
(exports, compare), the backfill's selection and savedmodel (with LocalStorage) all use it,
and checkpoint retention reads the state file through it. The `checkpoint` state file is
parsed by core.checkpoints; a TF checkpoint prefix exists when its `.index` file does. A path
some writer recorded (a state file entry, an eval result's `checkpoint_path`) is resolved by
`core.checkpoints.checkpoint_location` (`checkpoint_in_model_dir`): inside the model dir as
written (`ckpts/ckpt-5`), else by its name in the model dir, never where it points outside
it: the dir may have been copied since. A Keras weights file (`<name>-<step>.weights.h5`) is a
checkpoint of its own: it exists when that one file does. Keras writes no state file, so it
is only used when named explicitly (an operator's checkpoint_path, an eval result's, or the
backfill's selection).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_tf_export.core.checkpoints import (
    INDEX_SUFFIX,
    KERAS_WEIGHTS_SUFFIX,
    META_SUFFIX,
    STATE_FILENAME,
    CheckpointState,
    CheckpointStateError,
    checkpoint_location,
    checkpoint_name,
    checkpoint_prefix,
    checkpoint_series,
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

# How many checkpoint names an error message lists.
_SHOWN = 10


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
    storage: Storage,
    model_dir: str,
    checkpoint_path: str | None = None,
    *,
    recorded_path: str | None = None,
    step: int | None = None,
) -> ResolvedCheckpoint:
    """The checkpoint to export, by precedence:

    - `checkpoint_path`, the user's own choice: relative to `model_dir` unless absolute (a
      TF checkpoint prefix or a Keras `.weights.h5` file), used where it points;
    - `recorded_path`, a path a writer recorded (an eval result's `checkpoint_path`),
      resolved in `model_dir` (`checkpoint_in_model_dir`);
    - else `recorded_checkpoint(storage, model_dir, step=step)`, from the state file.

    Its name must end with its global step, as tf.train.CheckpointManager names checkpoints
    (`ckpt-1200`), or as `ckpt-1200.weights.h5` for a Keras weights file."""
    if checkpoint_path:
        prefix = _absolute(storage, model_dir, checkpoint_path)
        if not _is_checkpoint(storage, prefix):
            raise CheckpointError(
                f"checkpoint {prefix!r} not found: {checkpoint_file(prefix)} does not exist",
                prefix,
            )
    elif recorded_path:
        prefix = checkpoint_in_model_dir(
            storage, model_dir, recorded_path, recorded_in="the eval result"
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


def checkpoint_in_model_dir(
    storage: Storage, model_dir: str, recorded: str, *, recorded_in: str
) -> str:
    """The checkpoint a recorded path names, resolved in `model_dir`.

    Writers record where the model dir was when they wrote (the state file, an eval
    result's `checkpoint_path`); the dir may have been copied since (to another local path,
    to GCS), and an entry may point at another model dir (an absolute path, `../other/`).
    So a path inside `model_dir` (relative, or absolute under it) is used as written
    (`ckpts/ckpt-5`, as TensorFlow resolves it), and any other by its name directly in
    `model_dir` (`core.checkpoints.checkpoint_location`): a location outside `model_dir` is
    never read. CheckpointError names the recorded path, where it was looked for and the
    checkpoints that do exist there when there is none.
    """
    location = checkpoint_location(recorded, model_dir)
    if location is None:
        raise CheckpointError(
            f"{recorded_in} records checkpoint {recorded!r}, which names no checkpoint file",
            recorded,
        )
    uri = storage.join(model_dir, location)
    if _is_checkpoint(storage, uri):
        return uri
    directory = uri.rpartition("/")[0]
    holder = directory if "/" in location else "it"
    raise CheckpointError(
        f"{recorded_in} records checkpoint {recorded!r}; a recorded checkpoint is looked up as "
        f"written when inside the model dir, else by name, in the model dir {model_dir}, which "
        f"holds no {location!r} ({checkpoint_file(uri)} does not exist); {holder} holds "
        f"{_existing(storage, directory)}",
        recorded,
    )


def checkpoint_file(checkpoint: str) -> str:
    """The file whose existence makes `checkpoint` a checkpoint: a Keras weights file itself,
    else the TF checkpoint prefix's `.index` file."""
    return checkpoint if is_keras_weights(checkpoint) else checkpoint + INDEX_SUFFIX


def checkpoint_files(storage: Storage, checkpoint: str) -> tuple[str, list[str]]:
    """The directory of `checkpoint` and the names of the files in it that restoring it reads:
    the Keras weights file itself, or the TF checkpoint prefix's `.index` and `.data-*` files
    (not a TF1 `.meta` graph: exports rebuild the graphs from the model definition)."""
    parent, _, base = checkpoint.rstrip("/").rpartition("/")
    if is_keras_weights(base):
        return parent, [base]
    names = [
        e.name
        for e in storage.list_dir(parent)
        if not e.is_dir and checkpoint_prefix(e.name) == base and not e.name.endswith(META_SUFFIX)
    ]
    return parent, names


def list_checkpoints(
    storage: Storage, model_dir: str, *, keras_weights: bool = False
) -> list[StoredCheckpoint]:
    """The checkpoints of one kind in `model_dir`, by step: TF checkpoint prefixes (their
    `.index`, `.data-*` and `.meta` files) of the series the state file lists, in the model
    dir or the sub-directories they live in (all `<name>-<step>` prefixes directly in the
    model dir when there is no state file), or with `keras_weights` the Keras
    `<name>-<step>.weights.h5` files directly in it. One kind at a time: a TF model dir may
    hold weights files of another kind of step (epochs), or pretrained ones, that are not its
    checkpoints."""
    state = None if keras_weights else read_checkpoint_state(storage, model_dir)
    groups: dict[tuple[str, int], list[Entry]] = {}
    for location, entry in _files_of(storage, model_dir, state):
        named = _checkpoint_of(location)
        if named is None or is_keras_weights(named[0]) != keras_weights:
            continue
        if state is None or checkpoint_series(named[0]) in state.series:
            groups.setdefault(named, []).append(entry)
    found = []
    for (location, step), entries in groups.items():
        name = checkpoint_name(location)
        defining = [e for e in entries if e.name == checkpoint_file(name)]
        found.append(
            StoredCheckpoint(
                uri=storage.join(model_dir, location),
                step=step,
                files=tuple(sorted(e.name for e in entries)),
                complete=bool(defining),
                mtime=defining[0].mtime if defining else None,
            )
        )
    return sorted(found, key=lambda c: (c.step, c.uri))


def _files_of(
    storage: Storage, model_dir: str, state: CheckpointState | None
) -> list[tuple[str, Entry]]:
    """The files directly in `model_dir` and in the sub-directories `state`'s series live
    in (those that exist), with their locations relative to `model_dir`."""
    found = [(e.name, e) for e in storage.list_dir(model_dir) if not e.is_dir]
    for directory in () if state is None else state.directories:
        try:
            listing = storage.list_dir(storage.join(model_dir, directory))
        except StorageNotFoundError:
            continue
        found += [(f"{directory}/{e.name}", e) for e in listing if not e.is_dir]
    return found


def _checkpoint_of(filename: str) -> tuple[str, int] | None:
    """The checkpoint a file of a model dir belongs to (a Keras weights file is its own) and
    the step in its name; None for other files."""
    name = filename if is_keras_weights(filename) else checkpoint_prefix(filename)
    step = None if name is None else step_in_name(name)
    return None if name is None or step is None else (name, step)


def recorded_checkpoint(storage: Storage, model_dir: str, *, step: int | None = None) -> str:
    """The checkpoint the model dir's state file records: the kept checkpoint of `step` when
    the file still lists one, else the latest; resolved in `model_dir` as
    `checkpoint_in_model_dir` says."""
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
    return checkpoint_in_model_dir(
        storage,
        model_dir,
        recorded,
        recorded_in=f"the state file {storage.join(model_dir, STATE_FILENAME)}",
    )


@dataclass(frozen=True)
class StateFile:
    """The model dir's `checkpoint` state file as read: its URI, text and generation (to
    rewrite it only if nobody changed it since) and what it says."""

    uri: str
    text: str
    generation: str
    state: CheckpointState


def read_checkpoint_state(storage: Storage, model_dir: str) -> CheckpointState | None:
    """The model dir's parsed `checkpoint` state file, or None when there is none."""
    state_uri = storage.join(model_dir, STATE_FILENAME)
    try:
        data = storage.read_bytes(state_uri)
    except StorageNotFoundError:
        return None
    except BucketNotFoundError as err:
        raise _unreadable(state_uri, err) from None
    return _parse_state(model_dir, state_uri, data)[1]


def read_state_file(storage: Storage, model_dir: str) -> StateFile | None:
    """The model dir's `checkpoint` state file with its generation, or None when there is
    none."""
    state_uri = storage.join(model_dir, STATE_FILENAME)
    try:
        read = storage.read_versioned(state_uri)
    except StorageNotFoundError:
        return None
    except BucketNotFoundError as err:
        raise _unreadable(state_uri, err) from None
    text, state = _parse_state(model_dir, state_uri, read.data)
    return StateFile(state_uri, text, read.generation, state)


def _parse_state(model_dir: str, state_uri: str, data: bytes) -> tuple[str, CheckpointState]:
    """The text and the parsed state; CheckpointError (bad input) when unreadable. Any other
    StorageError of the read (an outage) stays retryable."""
    try:
        text = data.decode("utf-8")
        return text, parse_checkpoint_state(text, source=state_uri, model_dir=model_dir)
    except (UnicodeDecodeError, CheckpointStateError) as err:
        raise _unreadable(state_uri, err) from None


def _unreadable(state_uri: str, err: Exception) -> CheckpointError:
    return CheckpointError(f"cannot read the checkpoint state file {state_uri}: {err}", state_uri)


def _absolute(storage: Storage, model_dir: str, path: str) -> str:
    """`path` when it is a URI or absolute path, else `model_dir/path`."""
    if path.startswith("/") or "://" in path:
        return path.rstrip("/")
    return storage.join(model_dir, path)


def _existing(storage: Storage, directory: str) -> str:
    """The checkpoints directly in `directory` (TF prefixes with their `.index`, Keras
    weights files), by step, for error messages."""
    try:
        entries = storage.list_dir(directory)
    except StorageNotFoundError:
        return "nothing: it does not exist"
    present = {e.name for e in entries if not e.is_dir}
    found = {
        named
        for name in present
        if (named := _checkpoint_of(name)) is not None and checkpoint_file(named[0]) in present
    }
    shown = [name for name, _ in sorted(found, key=lambda named: (named[1], named[0]))]
    if not shown:
        return "no checkpoint"
    more = f" and {len(shown) - _SHOWN} older" if len(shown) > _SHOWN else ""
    return f"the checkpoints {', '.join(shown[-_SHOWN:])}{more}"


def _is_checkpoint(storage: Storage, prefix: str) -> bool:
    """Whether `checkpoint_file(prefix)` exists; a URI this backend cannot reach (a recorded
    path of another backend) holds no checkpoint for it."""
    try:
        return storage.exists(checkpoint_file(prefix))
    except ValueError:
        return False
