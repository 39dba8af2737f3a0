"""Apply a checkpoint retention plan (`core.checkpoint_retention`) to a model dir: read what
it decides from, delete the planned checkpoints' files, then prune the `checkpoint` state file.

The state file is read before the directory is listed: TensorFlow writes a checkpoint's files
before the state file that names it, so every checkpoint the file lists is in the listing.
The listing is the model dir's direct children plus the children of every sub-directory the
state file's series live in (`ckpts/` for `CheckpointManager(checkpoint_name="ckpts/ckpt")`).
It is rewritten only if nobody changed it since it was read (a trainer saving meanwhile);
otherwise it is left as the trainer wrote it, and the next run prunes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_tf_export.core.checkpoint_retention import CheckpointPlan, ModelDirEntry
from airflow_tf_export.core.checkpoints import CheckpointStateError, prune_checkpoint_state
from airflow_tf_export.storage.base import BucketNotFoundError, Storage, StorageNotFoundError
from airflow_tf_export.storage.checkpoints import CheckpointError, StateFile, read_state_file

UNCHANGED = "unchanged"
REWRITTEN = "rewritten"
PLANNED = "planned"
CHANGED_CONCURRENTLY = "changed-concurrently"


@dataclass(frozen=True)
class ModelDirContents:
    """What checkpoint retention decides from: the model dir's entries (its direct children
    and those of the sub-directories its state file's series live in, relative to it) and its
    state file (None when it has none)."""

    model_dir: str
    entries: tuple[ModelDirEntry, ...]
    state_file: StateFile | None


@dataclass(frozen=True)
class StateFileChange:
    """What happens to the state file: its URI (None when there is none), the entries
    removed from its list, the new text (None when unchanged) and the outcome."""

    uri: str | None
    removed: tuple[str, ...]
    text: str | None
    outcome: str

    def explain(self) -> str:
        """One line for logs and the XCom."""
        if self.uri is None:
            return "no state file"
        removed = ", ".join(self.removed)
        return {
            UNCHANGED: f"{self.uri} unchanged: it lists no checkpoint to remove",
            PLANNED: f"{self.uri} to be rewritten without {removed}",
            REWRITTEN: f"{self.uri} rewritten without {removed}",
            CHANGED_CONCURRENTLY: (
                f"{self.uri} left as it is: it changed after it was read (a trainer saved "
                f"meanwhile); {removed} stay listed until the next retention run"
            ),
        }[self.outcome]


def read_model_dir(storage: Storage, model_dir: str) -> ModelDirContents:
    """The state file, then the listing of `model_dir` and of the sub-directories the state
    file's series live in (one that does not exist holds nothing); CheckpointError when the
    model dir does not exist or its state file is unreadable."""
    state_file = read_state_file(storage, model_dir)
    try:
        listing = storage.list_dir(model_dir)
    except (StorageNotFoundError, BucketNotFoundError) as err:
        raise CheckpointError(f"model dir {model_dir} cannot be listed: {err}", model_dir) from None
    entries = [ModelDirEntry(e.name, e.is_dir) for e in listing]
    for directory in () if state_file is None else state_file.state.directories:
        try:
            inside = storage.list_dir(storage.join(model_dir, directory))
        except StorageNotFoundError:
            continue
        entries += [ModelDirEntry(f"{directory}/{e.name}", e.is_dir) for e in inside]
    return ModelDirContents(model_dir, tuple(entries), state_file)


def plan_state_file(contents: ModelDirContents, plan: CheckpointPlan) -> StateFileChange:
    """The state file pruned of `plan.state_drop`, computed before anything is deleted so a
    state file that cannot be pruned (CheckpointError) stops retention with nothing lost."""
    state_file = contents.state_file
    if state_file is None:
        return StateFileChange(None, (), None, UNCHANGED)
    try:
        text = prune_checkpoint_state(state_file.text, plan.state_drop, source=state_file.uri)
    except CheckpointStateError as err:
        raise CheckpointError(
            f"cannot prune the checkpoint state file {state_file.uri}, so no checkpoint is "
            f"deleted: {err}",
            state_file.uri,
        ) from None
    if text == state_file.text:
        return StateFileChange(state_file.uri, (), None, UNCHANGED)
    return StateFileChange(state_file.uri, plan.state_drop, text, PLANNED)


def apply_checkpoint_plan(
    storage: Storage, contents: ModelDirContents, plan: CheckpointPlan, change: StateFileChange
) -> StateFileChange:
    """Delete the planned files (every `.index` first), then write the pruned state file if
    it is still the one read; the state file's outcome."""
    for batch in plan.delete_batches:
        if batch:
            storage.delete_trees([storage.join(contents.model_dir, name) for name in batch])
    state_file = contents.state_file
    if state_file is None or change.text is None:
        return change
    written = storage.replace_if_unchanged(
        state_file.uri, change.text.encode("utf-8"), state_file.generation
    )
    return StateFileChange(
        change.uri, change.removed, change.text, REWRITTEN if written else CHANGED_CONCURRENTLY
    )
