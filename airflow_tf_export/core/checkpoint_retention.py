"""Which training checkpoints of a model dir may be deleted without losing anything needed.

Ownership is positive: only checkpoints of the model dir's own series are ever deleted. The
series are the locations without `-<step>` that its `checkpoint` state file's entries
resolve to (`core.checkpoints.checkpoint_location`): `model.ckpt` for an Estimator, `ckpt`
for tf.train.CheckpointManager, `ckpts/ckpt` for one saving into a sub-directory; or the one
the user names. Every other entry (other series such as `pretrained-1.*` or
`report-5.index`, Keras weights files, event files, `graph.pbtxt`, `eval/`, `export/`) is
kept and reported; without a state file and without a named series nothing is deleted.

Never deleted either: the checkpoint the state file names (training resumes from it),
checkpoints newer than the newest evaluated step (their eval result is still to come; when
nothing has been evaluated, all are kept), and, with `keep_exported`, checkpoints of the
name a committed version was exported from. A checkpoint's files are deleted together; the
state file is then pruned (`core.checkpoints.prune_checkpoint_state`) of the entries that
resolve to a checkpoint of the series that is not kept: deleted now, or already gone. An
entry whose checkpoint is kept, or is not of the series, stays listed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from airflow_tf_export.core.checkpoints import (
    INDEX_SUFFIX,
    STATE_FILENAME,
    CheckpointState,
    checkpoint_name,
    checkpoint_series,
    checkpoint_step,
    is_keras_weights,
)
from airflow_tf_export.core.checkpoints import checkpoint_prefix as checkpoint_of_file

NEWEST = "newest"
STATE_FILE = "state-file"
UNEVALUATED = "unevaluated"
EXPORTED = "exported"


@dataclass(frozen=True)
class ModelDirEntry:
    """A file or a directory of the model dir, by its path relative to the model dir: a
    direct child (`ckpt-5.index`, `eval`), or a child of a sub-directory the state file's
    series live in (`ckpts/ckpt-5.index`)."""

    name: str
    is_dir: bool = False


@dataclass(frozen=True)
class CheckpointPlanItem:
    """The decision for one checkpoint of the series: its location in the model dir
    (`ckpt-5`, `ckpts/ckpt-5`), the global step in its name and its files (`.index`,
    `.data-*`, `.meta`, as paths relative to the model dir)."""

    prefix: str
    step: int
    files: tuple[str, ...]
    keep: bool
    rule: str
    reason: str


@dataclass(frozen=True)
class KeptEntry:
    """An entry of the model dir that is not a checkpoint of the series: kept, and why."""

    name: str
    reason: str


@dataclass(frozen=True)
class CheckpointPlan:
    """Keep/delete for every checkpoint of the series, in step order, the other entries of
    the model dir (all kept), and which state file entries to prune (as recorded)."""

    items: tuple[CheckpointPlanItem, ...]
    series: tuple[str, ...]
    series_source: str
    others: tuple[KeptEntry, ...]
    state_drop: tuple[str, ...]

    @property
    def delete_batches(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The files to delete, in two batches: the deleted checkpoints' `.index` files
        (what makes each a checkpoint), then their other files. A crash part-way leaves
        only files of checkpoints that no longer exist, which the next run deletes."""
        files = [f for i in self.items if not i.keep for f in i.files]
        index = tuple(f for f in files if f.endswith(INDEX_SUFFIX))
        return index, tuple(f for f in files if not f.endswith(INDEX_SUFFIX))

    def explain(self) -> str:
        """The series, then one line per checkpoint ("<name> keep <rule>: <reason>" or
        "<name> delete: <reason>"), per other entry ("<name> kept: <reason>") and for the
        state file."""
        lines = [f"series: {', '.join(self.series) or 'none'} ({self.series_source})"]
        lines += [
            f"{i.prefix} keep {i.rule}: {i.reason}" if i.keep else f"{i.prefix} delete: {i.reason}"
            for i in self.items
        ]
        lines += [f"{o.name} kept: {o.reason}" for o in self.others]
        if self.state_drop:
            removed = ", ".join(self.state_drop)
            lines.append(f"{STATE_FILENAME} state file: remove {removed} from its list")
        return "\n".join(lines)


def _series_of(
    state: CheckpointState | None, checkpoint_prefix: str | None
) -> tuple[tuple[str, ...], str]:
    """The series whose checkpoints retention may delete, and where they come from: the one
    named by the user, else those the state file lists, else none."""
    if checkpoint_prefix is not None:
        return (checkpoint_prefix,), "named by checkpoint_prefix"
    if state is None:
        return (), (
            f"no {STATE_FILENAME} state file and no checkpoint_prefix: no checkpoint is deleted"
        )
    if not state.series:
        return (), (
            f"the {STATE_FILENAME} state file names no checkpoint ending in -<step>: "
            "no checkpoint is deleted"
        )
    return state.series, f"listed by the {STATE_FILENAME} state file"


def plan_checkpoint_retention(
    entries: Sequence[ModelDirEntry],
    *,
    keep_newest: int,
    state: CheckpointState | None,
    checkpoint_prefix: str | None = None,
    newest_evaluated_step: int | None,
    exported_prefixes: Collection[str] = (),
    keep_exported: bool = False,
) -> CheckpointPlan:
    """Keep the `keep_newest` newest checkpoints of the series plus every protected one;
    delete the rest of the series; keep and report everything else in the model dir.

    `entries` is what the model dir holds: its direct children and the children of every
    sub-directory `state.directories` names (a checkpoint missing from them counts as gone).
    The state file's entries are resolved by `state.location`. `exported_prefixes` (paths
    recorded in committed versions, maybe of a model dir since copied) protect every
    checkpoint of their name, wherever in the model dir it is: keeping too much is safe.
    """
    if isinstance(keep_newest, bool) or not isinstance(keep_newest, int) or keep_newest <= 0:
        raise ValueError(f"keep_newest must be a positive integer, got {keep_newest!r}")
    if newest_evaluated_step is not None and (
        isinstance(newest_evaluated_step, bool) or not isinstance(newest_evaluated_step, int)
    ):
        raise ValueError(
            f"newest_evaluated_step must be an integer or None, got {newest_evaluated_step!r}"
        )
    series, source = _series_of(state, checkpoint_prefix)
    groups: dict[tuple[int, str], list[str]] = {}
    others = []
    for entry in sorted(entries, key=lambda e: e.name):
        owner = None if entry.is_dir else checkpoint_of_file(entry.name)
        step = None if owner is None else checkpoint_step(owner)
        if owner is not None and step is not None and checkpoint_series(owner) in series:
            groups.setdefault((step, owner), []).append(entry.name)
        else:
            others.append(KeptEntry(entry.name, _why_kept(entry, owner, series, source)))
    ordered = sorted(groups)
    newest = {location for _, location in ordered[-keep_newest:]}
    latest = None if state is None else state.location(state.model_checkpoint_path)
    exported = {checkpoint_name(p) for p in exported_prefixes} if keep_exported else set()
    items = []
    for step, location in ordered:
        files = tuple(groups[step, location])
        reasons: list[tuple[str, str]] = []
        if location in newest:
            reasons.append((NEWEST, f"among the {keep_newest} newest"))
        if location == latest:
            reasons.append((STATE_FILE, "the latest checkpoint in the state file"))
        if newest_evaluated_step is None:
            reasons.append((UNEVALUATED, "no checkpoint has been evaluated yet"))
        elif step > newest_evaluated_step:
            reasons.append(
                (UNEVALUATED, f"newer than the newest evaluated step {newest_evaluated_step}")
            )
        if checkpoint_name(location) in exported:
            reasons.append((EXPORTED, "a committed version was exported from it"))
        if reasons:
            rule = ", ".join(r for r, _ in reasons)
            why = "; ".join(w for _, w in reasons)
            items.append(CheckpointPlanItem(location, step, files, True, rule, why))
        else:
            why = f"evaluated, older than the {keep_newest} newest, not protected"
            items.append(CheckpointPlanItem(location, step, files, False, "", why))
    kept = {i.prefix for i in items if i.keep}
    return CheckpointPlan(
        items=tuple(items),
        series=series,
        series_source=source,
        others=tuple(others),
        state_drop=_state_drop(state, series, kept),
    )


def _state_drop(
    state: CheckpointState | None, series: Collection[str], kept: Collection[str]
) -> tuple[str, ...]:
    """The state file's entries (as recorded) that resolve to a checkpoint of the series
    that is not kept (deleted now, or already gone): pruned from its list. Never the latest
    (it is kept), nor an entry whose checkpoint is kept or is of no series owned here."""
    if state is None:
        return ()
    latest = state.location(state.model_checkpoint_path)
    dropped = []
    for recorded in dict.fromkeys(state.all_model_checkpoint_paths):
        location = state.location(recorded)
        if location is None or location == latest or location in kept:
            continue
        if checkpoint_series(location) in series:
            dropped.append(recorded)
    return tuple(dropped)


def _why_kept(entry: ModelDirEntry, owner: str | None, series: Sequence[str], source: str) -> str:
    """Why an entry that is not a checkpoint of the series stays."""
    if entry.is_dir:
        return "a directory: checkpoint retention deletes checkpoint files only"
    if entry.name == STATE_FILENAME:
        return "the checkpoint state file"
    if is_keras_weights(entry.name):
        return "a Keras weights file: checkpoint retention deletes TF checkpoints only"
    if not series:
        return f"no series to delete from ({source})"
    named = ", ".join(series)
    if owner is not None:
        return f"not a checkpoint of this model dir's series {named}"
    return f"not a checkpoint file of this model dir's series {named}"
