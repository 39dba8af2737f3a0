"""Final, latest and best export strategies: whether a checkpoint should become a new version.

Decisions read the committed versions of the exporter's directory (their metadata), so
restarts, retries and concurrent runs see the same state. Every strategy first checks whether
the candidate checkpoint is already committed (`already_exported`: by path, or by name after
the model dir was copied): a retry gets the existing version back instead of a second
export. Foreign versions (see `core.foreign`: e.g. the exports tf.estimator left
in the same directory) count by their global step (and, for Best, their eval result): no
strategy exports a step a foreign version holds, nor publishes what a foreign version already
makes pointless (an older step, a worse model, a second final export).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from airflow_tf_export.core.checkpoints import checkpoint_name
from airflow_tf_export.core.comparison import (
    Comparator,
    CompareFn,
    MetricComparison,
    best_version,
    loss_smaller,
    rank_comparable,
)
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.foreign import (
    ForeignVersion,
    holding_step,
    ignored_note,
    newest_by_step,
    unreadable_steps,
)
from airflow_tf_export.core.metadata import ExportMetadata, VersionFacts
from airflow_tf_export.core.names import validate_exporter_name
from airflow_tf_export.core.retention import KeepNewest, KeepRule

DEFAULT_EXPORTS_TO_KEEP = 5
DEFAULT_EVENT_FILE_PATTERN = "eval/*.tfevents.*"
_LISTED_IGNORED = 5
_V = TypeVar("_V", bound=VersionFacts)


@dataclass(frozen=True)
class Candidate:
    """A checkpoint that could be exported, with the eval result that may justify it."""

    checkpoint_path: str
    global_step: int
    eval_result: EvalResult | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.checkpoint_path, str) or not self.checkpoint_path.rstrip("/"):
            raise ValueError(
                f"candidate checkpoint_path must be a non-empty path, got {self.checkpoint_path!r}"
            )
        if (
            isinstance(self.global_step, bool)
            or not isinstance(self.global_step, int)
            or self.global_step < 0
        ):
            raise ValueError(
                f"candidate global_step must be an integer >= 0, got {self.global_step!r}"
            )


@dataclass(frozen=True)
class Decision:
    """Export or not, and why; `existing_version` is set when the checkpoint is already exported."""

    export: bool
    reason: str
    existing_version: int | None = None


class ExportStrategy(Protocol):
    """What every strategy offers the operators and the storage layer."""

    @property
    def name(self) -> str:
        """The exporter name (its directory under `export/`)."""
        ...

    @property
    def kind(self) -> str:
        """ "final", "latest" or "best"."""
        ...

    @property
    def exports_to_keep(self) -> int | None:
        """How many newest versions the default retention keeps (None: keep all)."""
        ...

    def decide(
        self,
        committed: Sequence[ExportMetadata],
        candidate: Candidate,
        *,
        is_the_final_export: bool = False,
        foreign: Sequence[ForeignVersion] = (),
    ) -> Decision:
        """Whether `candidate` becomes a new version, given the committed and the foreign
        versions of the exporter directory."""
        ...

    def keep_rules(self) -> tuple[KeepRule, ...]:
        """The default retention rules of this exporter."""
        ...


def normalise_checkpoint_path(path: str) -> str:
    """The form checkpoint paths are matched in (GCS listings add a trailing '/')."""
    return path.rstrip("/")


def already_exported(
    committed: Sequence[ExportMetadata], candidate: Candidate
) -> ExportMetadata | None:
    """The committed version of the candidate's checkpoint (the oldest if several), or None.

    A version is of the candidate's checkpoint when it records the same path, or else (the
    model dir was copied since, e.g. from local disk to GCS, and its versions record the old
    place) the same checkpoint name at the same global step and, when the candidate has an
    eval result, the same evaluated step and metrics. The eval result keeps two different
    checkpoints apart that share a name and step, e.g. of two model dirs publishing into one
    exporter dir (`export_dir_base`): one with better metrics is still compared and exported
    by Best. Without eval results (Final, Latest) such a checkpoint is reported as the other
    one's version; neither strategy would export it anyway (its step is not newer).
    """
    wanted = normalise_checkpoint_path(candidate.checkpoint_path)
    same_path = [m for m in committed if normalise_checkpoint_path(m.checkpoint_path) == wanted]
    matches = same_path or [m for m in committed if _same_checkpoint_elsewhere(m, candidate)]
    return min(matches, key=lambda m: m.version) if matches else None


def versions_deciding(
    committed: Sequence[_V],
    candidate: Candidate,
    comparator: Comparator | None = None,
) -> list[_V]:
    """The committed versions a strategy's decision on `candidate` reads, sorted by version:
    those of the candidate's checkpoint, the newest by global step, and with a `comparator`
    (Best) the best and every version it cannot compare (named in Best's reason).

    Every strategy decides the same on any set of versions between these and `committed`, so
    a decision needs to check only these records (see `ExporterDir.scan_indexed`); the
    comparator must order results consistently (a `compare_fn` that does not, e.g. one that
    is not transitive, has no well-defined best either).
    """
    wanted = normalise_checkpoint_path(candidate.checkpoint_path)
    deciding: dict[int, _V] = {}
    comparable: list[_V] = []
    for m in committed:
        if normalise_checkpoint_path(m.checkpoint_path) == wanted or _same_checkpoint_elsewhere(
            m, candidate
        ):
            deciding[m.version] = m
        if comparator is not None:
            result = m.eval_result
            if result is None or not comparator.comparable(result):
                deciding[m.version] = m
            else:
                comparable.append(m)
    newest = _newest_by_step(committed)
    if newest is not None:
        deciding[newest.version] = newest
    if comparator is not None:
        deciding.update((m.version, m) for m in rank_comparable(comparable, comparator, 1))
    return [deciding[v] for v in sorted(deciding)]


def _same_checkpoint_elsewhere(meta: VersionFacts, candidate: Candidate) -> bool:
    """Whether `meta` records the candidate's checkpoint under another path: same name and
    global step, and the same eval result (step and metrics) when the candidate has one."""
    if meta.global_step != candidate.global_step:
        return False
    if checkpoint_name(meta.checkpoint_path) != checkpoint_name(candidate.checkpoint_path):
        return False
    wanted = candidate.eval_result
    if wanted is None:
        return True
    found = meta.eval_result
    return found is not None and (found.step, dict(found.metrics)) == (
        wanted.step,
        dict(wanted.metrics),
    )


def _existing(meta: ExportMetadata, candidate: Candidate) -> Decision:
    """The decision for a checkpoint already exported as `meta`; the reason names the path
    the version records when it is not the candidate's."""
    elsewhere = ""
    if normalise_checkpoint_path(meta.checkpoint_path) != normalise_checkpoint_path(
        candidate.checkpoint_path
    ):
        same = "name, global step and eval result" if candidate.eval_result else "name and step"
        elsewhere = f" (recorded as {meta.checkpoint_path!r}: the same checkpoint {same})"
    return Decision(
        export=False,
        reason=f"already exported as version {meta.version}{elsewhere}",
        existing_version=meta.version,
    )


def _validate_exports_to_keep(exports_to_keep: object) -> None:
    if exports_to_keep is None:
        return
    if (
        isinstance(exports_to_keep, bool)
        or not isinstance(exports_to_keep, int)
        or exports_to_keep <= 0
    ):
        raise ValueError(
            "`exports_to_keep`, if provided, must be a positive number. "
            f"Got {exports_to_keep!r} (expected a positive integer, or None to keep all exports)"
        )


def _newest_by_step(committed: Sequence[_V]) -> _V | None:
    return max(committed, key=lambda m: (m.global_step, m.version), default=None)


@dataclass(frozen=True)
class _Held:
    """A version holding a global step, committed or foreign, and how reasons name it:
    `name` ("version 5 (step 100)") and `clause` ("step 100 in version 5")."""

    step: int
    name: str
    clause: str
    foreign: bool


def _newest_held(
    committed: Sequence[ExportMetadata], foreign: Sequence[ForeignVersion]
) -> _Held | None:
    """The version with the highest step, committed or foreign (a committed one on a tie)."""
    held = []
    newest = _newest_by_step(committed)
    if newest is not None:
        step, version = newest.global_step, newest.version
        held.append(
            _Held(
                step, f"version {version} (step {step})", f"step {step} in version {version}", False
            )
        )
    newest_foreign = newest_by_step(foreign)
    if newest_foreign is not None and newest_foreign.global_step is not None:
        held.append(
            _Held(newest_foreign.global_step, newest_foreign.label, newest_foreign.clause, True)
        )
    return max(held, key=lambda h: (h.step, not h.foreign), default=None)


def _same_step_as_foreign(
    foreign: Sequence[ForeignVersion], candidate: Candidate, note: str
) -> Decision | None:
    """A skip when a foreign version already holds the candidate's step (else None)."""
    same = holding_step(foreign, candidate.global_step)
    if same is None:
        return None
    return Decision(
        False, f"skipped: step {candidate.global_step} is already exported as {same.label}{note}"
    )


def _default_keep_rules(exports_to_keep: int | None) -> tuple[KeepRule, ...]:
    return () if exports_to_keep is None else (KeepNewest(exports_to_keep),)


@dataclass(frozen=True, kw_only=True)
class FinalStrategy:
    """Exports once, at the end of training.

    Idempotent: a rerun for the same checkpoint returns the existing version. When a final
    export of a different checkpoint exists, the candidate is exported only if its global
    step is newer (training was resumed and finished again); otherwise it is skipped. A
    foreign version counts as a final export of its step.
    Final exports are never deleted by default (no keep rules, like the seeds: no GC).
    """

    name: str
    kind: str = field(default="final", init=False)
    exports_to_keep: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        validate_exporter_name(self.name)

    def decide(
        self,
        committed: Sequence[ExportMetadata],
        candidate: Candidate,
        *,
        is_the_final_export: bool = False,
        foreign: Sequence[ForeignVersion] = (),
    ) -> Decision:
        """See the class docstring."""
        existing = already_exported(committed, candidate)
        if existing is not None:
            return _existing(existing, candidate)
        if not is_the_final_export:
            return Decision(False, "skipped: not the final export")
        note = ignored_note(unreadable_steps(foreign))
        step = candidate.global_step
        newest = _newest_held(committed, foreign)
        if newest is None:
            return Decision(True, f"final export of step {step}{note}")
        if step <= newest.step:
            return Decision(
                False,
                f"skipped: final export already exists as {newest.name}; candidate step "
                f"{step} is not newer{note}",
            )
        return Decision(True, f"final export of step {step}, newer than {newest.clause}{note}")

    def keep_rules(self) -> tuple[KeepRule, ...]:
        """No retention: final exports are kept."""
        return ()


@dataclass(frozen=True, kw_only=True)
class LatestStrategy:
    """Exports every new checkpoint whose global step is newer than every committed and
    foreign version's.

    A checkpoint at the same step as a committed version (under another path, e.g. after a
    restore) is skipped: it is not newer progress; so is one at a step a foreign version holds.
    """

    name: str
    exports_to_keep: int | None = DEFAULT_EXPORTS_TO_KEEP
    kind: str = field(default="latest", init=False)

    def __post_init__(self) -> None:
        validate_exporter_name(self.name)
        _validate_exports_to_keep(self.exports_to_keep)

    def decide(
        self,
        committed: Sequence[ExportMetadata],
        candidate: Candidate,
        *,
        is_the_final_export: bool = False,
        foreign: Sequence[ForeignVersion] = (),
    ) -> Decision:
        """See the class docstring; `is_the_final_export` does not matter."""
        existing = already_exported(committed, candidate)
        if existing is not None:
            return _existing(existing, candidate)
        note = ignored_note(unreadable_steps(foreign))
        same_step = _same_step_as_foreign(foreign, candidate, note)
        if same_step is not None:
            return same_step
        newest = _newest_held(committed, foreign)
        step = candidate.global_step
        if newest is None:
            what = "committed or readable foreign version" if foreign else "committed version"
            return Decision(True, f"first export: step {step}, no {what} yet{note}")
        if step < newest.step:
            return Decision(
                False, f"skipped: candidate step {step} is older than {newest.clause}{note}"
            )
        if step == newest.step:
            return Decision(
                False, f"skipped: candidate step {step} is not newer than {newest.clause}{note}"
            )
        return Decision(True, f"candidate step {step} is newer than {newest.clause}{note}")

    def keep_rules(self) -> tuple[KeepRule, ...]:
        """Keep the `exports_to_keep` newest versions (nothing is deleted when None)."""
        return _default_keep_rules(self.exports_to_keep)


@dataclass(frozen=True, kw_only=True)
class BestStrategy:
    """Exports a checkpoint only when its eval result beats every committed version's.

    tensorflow/tensorflow#47396: the best is derived from the eval results stored in ALL
    committed versions' metadata, so a restart never exports a worse model (the seeds kept
    it in memory and always exported the first candidate after a restart).

    Give either `compare_fn` (the seeds' style) or `comparison` (a declared metric with
    direction, min_delta and absolute bounds), not both. The default compare_fn
    `loss_smaller` is decided as `MetricComparison("loss")`, which is equivalent and lets
    the reasons name the values. Committed versions without the compared metric are
    ignored (and named in the reason). Foreign versions count with the eval result of their
    step: the candidate must beat the best of them too, and a step a foreign version holds is
    not exported again; those without a comparable eval result are named as ignored. The first
    export happens when no comparable version is there, provided the candidate is admissible
    (bounds; a NaN metric never is).
    """

    name: str = "best_exporter"
    compare_fn: Callable[..., Any] | None = loss_smaller
    comparison: MetricComparison | None = None
    exports_to_keep: int | None = DEFAULT_EXPORTS_TO_KEEP
    event_file_pattern: str | None = DEFAULT_EVENT_FILE_PATTERN
    kind: str = field(default="best", init=False)
    comparator: Comparator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_exporter_name(self.name)
        object.__setattr__(self, "comparator", self._build_comparator())
        _validate_exports_to_keep(self.exports_to_keep)
        if self.event_file_pattern is not None and (
            not isinstance(self.event_file_pattern, str) or not self.event_file_pattern
        ):
            raise ValueError(
                "event_file_pattern must be a non-empty glob relative to model_dir "
                f"(e.g. {DEFAULT_EVENT_FILE_PATTERN!r}) or None, got {self.event_file_pattern!r}"
            )

    def _build_comparator(self) -> Comparator:
        if self.comparison is not None:
            if not isinstance(self.comparison, MetricComparison):
                raise ValueError(f"comparison must be a MetricComparison, got {self.comparison!r}")
            if self.compare_fn is not None and self.compare_fn is not loss_smaller:
                raise ValueError(
                    f"give either compare_fn ({self.compare_fn!r}) or comparison "
                    f"({self.comparison!r}), not both"
                )
            return self.comparison
        if self.compare_fn is loss_smaller:
            return MetricComparison()
        return CompareFn(self.compare_fn)

    def decide(
        self,
        committed: Sequence[ExportMetadata],
        candidate: Candidate,
        *,
        is_the_final_export: bool = False,
        foreign: Sequence[ForeignVersion] = (),
    ) -> Decision:
        """See the class docstring; `is_the_final_export` does not matter."""
        existing = already_exported(committed, candidate)
        if existing is not None:
            return _existing(existing, candidate)
        result = self._candidate_result(candidate)
        note = self._ignored_note(committed) + ignored_note(self._ignored_foreign(foreign))
        same_step = _same_step_as_foreign(foreign, candidate, note)
        if same_step is not None:
            return same_step
        admissible = self.comparator.admissible(result)
        if not admissible.better:
            return Decision(False, f"skipped: {admissible.reason}")
        rival = self._best_rival(committed, foreign)
        if rival is None:
            what = "committed or foreign version" if foreign else "committed version"
            return Decision(
                True, f"first export: no {what} to compare by {self.comparator.describe()}{note}"
            )
        best_result, best_name = rival
        verdict = self.comparator.compare(best_result, result)
        prefix = "" if verdict.better else "skipped: "
        return Decision(verdict.better, f"{prefix}{verdict.reason} in {best_name}{note}")

    def keep_rules(self) -> tuple[KeepRule, ...]:
        """Keep the `exports_to_keep` newest versions (nothing is deleted when None)."""
        return _default_keep_rules(self.exports_to_keep)

    def _candidate_result(self, candidate: Candidate) -> EvalResult:
        result = candidate.eval_result
        if result is None:
            raise ValueError(
                f"best exporter {self.name!r} needs an eval result for checkpoint "
                f"{candidate.checkpoint_path!r} (step {candidate.global_step}); got None"
            )
        if result.step != candidate.global_step:
            raise ValueError(
                f"eval result is for step {result.step} but checkpoint "
                f"{candidate.checkpoint_path!r} is step {candidate.global_step}"
            )
        self.comparator.check(result)
        return result

    def _best_rival(
        self, committed: Sequence[ExportMetadata], foreign: Sequence[ForeignVersion]
    ) -> tuple[EvalResult, str] | None:
        """The eval result to beat and how to name its version: the best committed or the
        best comparable foreign version, whichever ranks higher (committed on a tie)."""
        rivals: list[tuple[EvalResult, str]] = []
        best = best_version(committed, self.comparator)
        if best is not None and best.eval_result is not None:
            rivals.append((best.eval_result, f"version {best.version}"))
        usable = sorted(
            (
                f
                for f in foreign
                if f.eval_result is not None and self.comparator.comparable(f.eval_result)
            ),
            key=lambda f: f.version,
        )
        best_foreign = max(usable, key=self._foreign_rank, default=None)
        if best_foreign is not None and best_foreign.eval_result is not None:
            rivals.append((best_foreign.eval_result, best_foreign.label))
        if len(rivals) == 2 and self.comparator.rank_key(rivals[1][0]) > (
            self.comparator.rank_key(rivals[0][0])
        ):
            return rivals[1]
        return rivals[0] if rivals else None

    def _foreign_rank(self, foreign: ForeignVersion) -> Any:
        assert foreign.eval_result is not None
        return self.comparator.rank_key(foreign.eval_result)

    def _ignored_foreign(
        self, foreign: Sequence[ForeignVersion]
    ) -> list[tuple[ForeignVersion, str]]:
        """Foreign versions Best cannot compare with, each with why."""
        ignored = unreadable_steps(foreign)
        for f in foreign:
            if f.global_step is None:
                continue
            if f.eval_result is None:
                ignored.append((f, f"step {f.global_step}: no eval result"))
            elif not self.comparator.comparable(f.eval_result):
                ignored.append(
                    (
                        f,
                        f"step {f.global_step}: eval result not usable by "
                        f"{self.comparator.describe()}",
                    )
                )
        return ignored

    def _ignored_note(self, committed: Sequence[ExportMetadata]) -> str:
        ignored = sorted(
            m.version
            for m in committed
            if m.eval_result is None or not self.comparator.comparable(m.eval_result)
        )
        if not ignored:
            return ""
        listed = ", ".join(str(v) for v in ignored[:_LISTED_IGNORED])
        more = (
            f" and {len(ignored) - _LISTED_IGNORED} more" if len(ignored) > _LISTED_IGNORED else ""
        )
        return (
            f" (ignored versions without an eval result usable by "
            f"{self.comparator.describe()}: {listed}{more})"
        )
