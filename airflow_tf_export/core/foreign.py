"""Foreign versions: integer version dirs of an exporter dir that this product did not write.

A user migrating from tf.estimator has the Estimator's own exports in the exporter dirs
(`export/<name>/<timestamp>/`, a SavedModel without `export_metadata.json`). They are kept
and never deleted, and the strategies count them: the global step read from the SavedModel's
variables (and, for Best, the eval result of that step) stands in for the metadata they lack.
A foreign version whose step could not be read is named in decisions as ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from airflow_tf_export.core.eval_result import EvalResult

PRODUCT = "airflow-tf-export"
_LISTED = 5


@dataclass(frozen=True)
class ForeignVersion:
    """One foreign version: its global step, or why it could not be read (`unreadable`),
    and the eval result of its step when one was looked up and found."""

    version: int
    global_step: int | None = None
    eval_result: EvalResult | None = None
    unreadable: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version <= 0:
            raise ValueError(f"foreign version must be a positive integer, got {self.version!r}")
        if (self.global_step is None) == (self.unreadable is None):
            raise ValueError(
                f"foreign version {self.version} needs either a global_step or the reason it "
                f"is unreadable, got global_step={self.global_step!r}, "
                f"unreadable={self.unreadable!r}"
            )
        step = self.global_step
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
            raise ValueError(
                f"foreign version {self.version} global_step must be an integer >= 0, got {step!r}"
            )
        if self.eval_result is not None and self.eval_result.step != step:
            raise ValueError(
                f"foreign version {self.version} holds step {step}, but its eval result is for "
                f"step {self.eval_result.step}"
            )

    @property
    def label(self) -> str:
        """How decisions name it, e.g. "foreign version 1796476015 (step 100, not written by
        airflow-tf-export)"."""
        return f"foreign version {self.version} (step {self.global_step}, not written by {PRODUCT})"

    @property
    def clause(self) -> str:
        """ "step 100 in foreign version 1796476015 (not written by airflow-tf-export)"."""
        return (
            f"step {self.global_step} in foreign version {self.version} (not written by {PRODUCT})"
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for XCom and logs)."""
        return {
            "version": self.version,
            "global_step": self.global_step,
            "eval_result": None if self.eval_result is None else self.eval_result.to_dict(),
            "unreadable": self.unreadable,
        }


def with_eval_results(
    foreign: Sequence[ForeignVersion], results: Mapping[int, EvalResult]
) -> list[ForeignVersion]:
    """`foreign` with the eval result of each one's step (step -> result) where there is one."""
    return [
        replace(f, eval_result=results[f.global_step])
        if f.global_step is not None and f.global_step in results
        else f
        for f in foreign
    ]


def known_steps(foreign: Sequence[ForeignVersion]) -> list[int]:
    """The distinct global steps the foreign versions hold, ascending."""
    return sorted({f.global_step for f in foreign if f.global_step is not None})


def holding_step(foreign: Sequence[ForeignVersion], step: int) -> ForeignVersion | None:
    """The oldest foreign version holding global step `step`, or None."""
    return min((f for f in foreign if f.global_step == step), key=lambda f: f.version, default=None)


def newest_exported_step(
    committed_steps: Iterable[int], foreign: Sequence[ForeignVersion]
) -> int | None:
    """The highest global step an exporter dir holds: of its committed versions and of its
    foreign versions whose step could be read (None: nothing exported yet). An Estimator's
    exports count, so a wait for "a step newer than the exporter's" does not end on a step
    the Estimator already exported."""
    return max([*committed_steps, *known_steps(foreign)], default=None)


def newest_by_step(foreign: Sequence[ForeignVersion]) -> ForeignVersion | None:
    """The foreign version with the highest known step (then the highest version), or None."""
    known = [f for f in foreign if f.global_step is not None]
    return max(known, key=lambda f: (f.global_step, f.version), default=None)


def ignored_note(ignored: Sequence[tuple[ForeignVersion, str]]) -> str:
    """A clause for a decision's reason listing foreign versions it could not count, each with
    why: " (ignored foreign versions: 1580000000 (global step unreadable: ...))"."""
    if not ignored:
        return ""
    ordered = sorted(ignored, key=lambda item: item[0].version)
    listed = ", ".join(f"{f.version} ({why})" for f, why in ordered[:_LISTED])
    more = f" and {len(ordered) - _LISTED} more" if len(ordered) > _LISTED else ""
    return f" (ignored foreign versions: {listed}{more})"


def unreadable_steps(foreign: Sequence[ForeignVersion]) -> list[tuple[ForeignVersion, str]]:
    """The foreign versions whose global step could not be read, with why."""
    return [(f, f"global step unreadable: {f.unreadable}") for f in foreign if f.unreadable]
