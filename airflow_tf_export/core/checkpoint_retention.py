"""Which training checkpoints may be deleted without losing anything still needed.

Never deleted: the checkpoint the `checkpoint` state file names (training resumes from it),
checkpoints newer than the newest evaluated step (their eval result is still to come; when
nothing has been evaluated, all are kept), and, with `keep_exported`, checkpoints that a
committed version was exported from.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from airflow_tf_export.core.checkpoints import checkpoint_name

NEWEST = "newest"
STATE_FILE = "state-file"
UNEVALUATED = "unevaluated"
EXPORTED = "exported"


@dataclass(frozen=True)
class CheckpointInfo:
    """One checkpoint: its prefix (`.../ckpt-1200`, no `.index` suffix) and global step."""

    prefix: str
    step: int

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not self.prefix.rstrip("/"):
            raise ValueError(f"checkpoint prefix must be a non-empty path, got {self.prefix!r}")
        if isinstance(self.step, bool) or not isinstance(self.step, int) or self.step < 0:
            raise ValueError(
                f"checkpoint {self.prefix!r} step must be an integer >= 0, got {self.step!r}"
            )


@dataclass(frozen=True)
class CheckpointPlanItem:
    """The decision for one checkpoint."""

    prefix: str
    step: int
    keep: bool
    rule: str
    reason: str


@dataclass(frozen=True)
class CheckpointPlan:
    """Keep/delete for every checkpoint, in step order, explainable line by line."""

    items: tuple[CheckpointPlanItem, ...]

    @property
    def keep_prefixes(self) -> tuple[str, ...]:
        """Kept checkpoint prefixes, by ascending step."""
        return tuple(i.prefix for i in self.items if i.keep)

    @property
    def delete_prefixes(self) -> tuple[str, ...]:
        """Checkpoint prefixes to delete, by ascending step."""
        return tuple(i.prefix for i in self.items if not i.keep)

    def explain(self) -> str:
        """One line per checkpoint: "<prefix> keep <rule>: <reason>" or "<prefix> delete: ..."."""
        return "\n".join(
            f"{i.prefix} keep {i.rule}: {i.reason}" if i.keep else f"{i.prefix} delete: {i.reason}"
            for i in self.items
        )


def plan_checkpoint_retention(
    checkpoints: Sequence[CheckpointInfo],
    *,
    keep_newest: int,
    state_latest: str | None,
    newest_evaluated_step: int | None,
    exported_prefixes: Collection[str] = (),
    keep_exported: bool = False,
) -> CheckpointPlan:
    """Keep the `keep_newest` newest checkpoints plus every protected one; delete the rest.

    `state_latest` and `exported_prefixes` match a checkpoint prefix by its name (last path
    segment), wherever the recorded path puts its directory.
    """
    if isinstance(keep_newest, bool) or not isinstance(keep_newest, int) or keep_newest <= 0:
        raise ValueError(f"keep_newest must be a positive integer, got {keep_newest!r}")
    if newest_evaluated_step is not None and (
        isinstance(newest_evaluated_step, bool) or not isinstance(newest_evaluated_step, int)
    ):
        raise ValueError(
            f"newest_evaluated_step must be an integer or None, got {newest_evaluated_step!r}"
        )
    ordered = sorted(
        {c.prefix.rstrip("/"): c for c in checkpoints}.values(), key=lambda c: (c.step, c.prefix)
    )
    newest = {c.prefix for c in ordered[-keep_newest:]}
    # Recorded paths name checkpoints of the model dir by their last path segment: the state
    # file may record them relative, or (for a dir copied elsewhere, e.g. local disk to GCS) at
    # the old location, and checkpoints live directly in the model dir.
    latest = {checkpoint_name(state_latest)} if state_latest else set()
    exported = {checkpoint_name(p) for p in exported_prefixes} if keep_exported else set()
    items = []
    for info in ordered:
        reasons: list[tuple[str, str]] = []
        if info.prefix in newest:
            reasons.append((NEWEST, f"among the {keep_newest} newest"))
        if checkpoint_name(info.prefix) in latest:
            reasons.append((STATE_FILE, "the latest checkpoint in the state file"))
        if newest_evaluated_step is None:
            reasons.append((UNEVALUATED, "no checkpoint has been evaluated yet"))
        elif info.step > newest_evaluated_step:
            reasons.append(
                (UNEVALUATED, f"newer than the newest evaluated step {newest_evaluated_step}")
            )
        if checkpoint_name(info.prefix) in exported:
            reasons.append((EXPORTED, "a committed version was exported from it"))
        if reasons:
            rule = ", ".join(r for r, _ in reasons)
            items.append(
                CheckpointPlanItem(
                    info.prefix, info.step, True, rule, "; ".join(w for _, w in reasons)
                )
            )
        else:
            items.append(
                CheckpointPlanItem(
                    info.prefix,
                    info.step,
                    False,
                    "",
                    f"evaluated, older than the {keep_newest} newest, not protected",
                )
            )
    return CheckpointPlan(tuple(items))
