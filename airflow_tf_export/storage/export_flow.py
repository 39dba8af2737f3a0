"""Decide, write, re-decide, publish, then apply retention: one export by one strategy.

The decision is taken under the backend's exporter lock on one indexed scan
(`ExporterDir.scan_indexed`: one listing, and only the records that changed or that the
decision reads are read); a skip applies retention on that same scan. An export writes the
(slow) SavedModel outside the lock, then decides again under it on a fresh listing that
reads only what changed since the first, so a Best exporter racing another one on the same
directory never publishes a model that stopped being better while it was being written.
Both decisions see the foreign versions of their scan (e.g. the Estimator's own exports),
with the eval results of their steps when the caller can look them up (Best).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_tf_export.core.comparison import Comparator, best_version
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.foreign import ForeignVersion, known_steps, with_eval_results
from airflow_tf_export.core.metadata import ExportMetadata, Lineage, VersionFacts, same_facts
from airflow_tf_export.core.retention import (
    DEFAULT_STAGING_GRACE_SECONDS,
    KeepRule,
    RetentionPlan,
    plan_retention,
)
from airflow_tf_export.core.strategies import (
    Candidate,
    Decision,
    ExportStrategy,
    versions_deciding,
)
from airflow_tf_export.core.validation import ValidationRecord
from airflow_tf_export.storage.base import WrittenModel
from airflow_tf_export.storage.exporter_dir import ExporterDir, ExporterDirState

WriteSavedModel = Callable[[Path], WrittenModel]
ValidateStaged = Callable[[Path, WrittenModel], ValidationRecord]
"""Checks a staged SavedModel before it is published (ValueError: not published)."""
EvalResultsOfSteps = Callable[[Sequence[int]], Mapping[int, EvalResult]]
"""Looks up the eval results of global steps: step -> result for those that have one."""


@dataclass(frozen=True)
class ExportOutcome:
    """What one export call did: the decision, the version it published (or the existing
    version of the same checkpoint), the retention plan applied afterwards, and the foreign
    versions the decision considered."""

    decision: Decision
    metadata: ExportMetadata | None
    version_uri: str | None
    retention: RetentionPlan
    foreign: tuple[ForeignVersion, ...] = ()

    @property
    def exported(self) -> bool:
        """Whether this call published a new version."""
        return self.decision.export

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (for XCom and logs)."""
        return {
            "exported": self.exported,
            "reason": self.decision.reason,
            "version": None if self.metadata is None else self.metadata.version,
            "existing_version": self.decision.existing_version,
            "version_uri": self.version_uri,
            "metadata": None if self.metadata is None else json.loads(self.metadata.to_json()),
            "foreign_versions": [f.to_dict() for f in self.foreign],
            "retention": {
                "keep": list(self.retention.keep_versions),
                "delete": list(self.retention.delete_versions),
                "staging_delete": list(self.retention.uncommitted_delete),
                "foreign": list(self.retention.foreign_versions),
                "not_ours": list(self.retention.not_ours),
                "invalid": [{"version": v, "error": e} for v, e in self.retention.invalid],
                "explain": self.retention.explain(),
            },
        }


def export_with_strategy(
    exporter: ExporterDir,
    strategy: ExportStrategy,
    candidate: Candidate,
    write_savedmodel: WriteSavedModel,
    *,
    is_the_final_export: bool = False,
    lineage: Lineage | None = None,
    keep_rules: Sequence[KeepRule] | None = None,
    now_seconds: int | None = None,
    staging_grace_seconds: float = DEFAULT_STAGING_GRACE_SECONDS,
    foreign_eval_results: EvalResultsOfSteps | None = None,
    validate: ValidateStaged | None = None,
) -> ExportOutcome:
    """Export `candidate` if `strategy` says so, then apply retention.

    `write_savedmodel(directory)` writes the SavedModel into the given empty local directory
    and returns what it wrote. Retention uses `keep_rules` if given, else the strategy's
    own (`exports_to_keep`); the newest committed version and, for strategies with a
    `comparator` (Best), the best version are always kept; foreign versions are never
    deleted. `foreign_eval_results` (Best) looks up the eval results of the foreign versions'
    steps; it is called only when there are foreign versions with a known step, and only for
    steps it has not already found. `validate(staging, written)`, when given, checks the
    staged SavedModel after it is written and before the lock is taken to publish it; what it
    returns is recorded in the version's metadata, and what it raises leaves everything
    published as it was.
    """
    storage = exporter.storage
    adopt = ForeignAdopter(foreign_eval_results)
    finish = _Finisher(exporter, strategy, keep_rules, staging_grace_seconds)
    with storage.exporter_lock(exporter.uri):
        first = exporter.scan_indexed(now_seconds=now_seconds)
        first, decision, foreign = decide_in_dir(
            exporter, first, strategy, candidate, is_the_final_export, adopt
        )
        if not decision.export:
            return finish(decision, first, None, foreign)
    with storage.staging_dir(exporter.uri) as staging:
        written = write_savedmodel(staging)
        validation = None if validate is None else validate(staging, written)
        with storage.exporter_lock(exporter.uri):
            scanned = exporter.scan_indexed(now_seconds=now_seconds, since=first)
            state = replace(scanned, staging=[s for s in scanned.staging if s.name != staging.name])
            state, decision, foreign = decide_in_dir(
                exporter, state, strategy, candidate, is_the_final_export, adopt
            )
            published = None
            if decision.export:
                now = int(time.time()) if now_seconds is None else now_seconds
                published = storage.publish_version(
                    staging,
                    exporter.uri,
                    _metadata(strategy, candidate, decision, written, lineage, now, validation),
                    now_seconds=now,
                )
            return finish(decision, state, published, foreign)


def decide_in_dir(
    exporter: ExporterDir,
    state: ExporterDirState,
    strategy: ExportStrategy,
    candidate: Candidate,
    is_the_final_export: bool,
    adopt: ForeignAdopter,
) -> tuple[ExporterDirState, Decision, list[ForeignVersion]]:
    """`strategy`'s decision on `candidate` in a scanned exporter dir, reading only the records
    it needs: the versions deciding it (`versions_deciding`) are checked in full first
    (`ExporterDir.confirm`), and found again when a record does not read as its index row
    did (it failed its check, or changed). Returns the state with those checked, the
    decision, and the foreign versions with their eval results."""
    comparator: Comparator | None = getattr(strategy, "comparator", None)
    deciding = versions_deciding(state.versions(), candidate, comparator)
    while unchecked := [m for m in deciding if m.version in state.indexed]:
        state = exporter.confirm(state, [m.version for m in unchecked])
        if _read_as_indexed(state, unchecked):
            break  # the same facts as before: the same versions decide
        deciding = versions_deciding(state.versions(), candidate, comparator)
    records = {m.version: m for m in state.committed}
    foreign = adopt(state.foreign_versions)
    decision = strategy.decide(
        [records[m.version] for m in deciding],
        candidate,
        is_the_final_export=is_the_final_export,
        foreign=foreign,
    )
    return state, decision, foreign


def _read_as_indexed(state: ExporterDirState, rows: Sequence[VersionFacts]) -> bool:
    """Whether each of `rows` is committed in `state` with the facts its index row gave."""
    records = {m.version: m for m in state.committed}
    return all(r.version in records and same_facts(r, records[r.version]) for r in rows)


class ForeignAdopter:
    """Gives foreign versions the eval results of their steps, looking each step up until it
    is found (the first decision and the one under the lock share what was found)."""

    def __init__(self, lookup: EvalResultsOfSteps | None) -> None:
        self.lookup = lookup
        self.found: dict[int, EvalResult] = {}

    def __call__(self, foreign: Sequence[ForeignVersion]) -> list[ForeignVersion]:
        missing = [s for s in known_steps(foreign) if s not in self.found]
        if self.lookup is not None and missing:
            self.found.update(self.lookup(missing))
        return with_eval_results(foreign, self.found)


def _metadata(
    strategy: ExportStrategy,
    candidate: Candidate,
    decision: Decision,
    written: WrittenModel,
    lineage: Lineage | None,
    now: int,
    validation: ValidationRecord | None,
) -> ExportMetadata:
    return ExportMetadata(
        exporter=strategy.name,
        strategy=strategy.kind,
        version=0,
        checkpoint_path=candidate.checkpoint_path,
        global_step=candidate.global_step,
        created_at=datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        eval_result=candidate.eval_result,
        reason=decision.reason,
        tags=tuple(written.tags),
        signature_keys=dict(written.signature_keys),
        lineage=lineage,
        validation=validation,
    )


@dataclass(frozen=True)
class _Finisher:
    """Plans and applies retention after a decision, under the exporter lock, and records
    the exporter dir's index."""

    exporter: ExporterDir
    strategy: ExportStrategy
    keep_rules: Sequence[KeepRule] | None
    staging_grace_seconds: float

    def __call__(
        self,
        decision: Decision,
        state: ExporterDirState,
        published: ExportMetadata | None,
        foreign: Sequence[ForeignVersion],
    ) -> ExportOutcome:
        """Retention over the committed versions (plus the one just published). A plan that
        deletes anything is made again on every version checked in full: a version it would
        delete may be invalid (never deleted), and one it keeps may be invalid too (it must
        not take the place of a committed version a keep rule would keep)."""
        plan = self._plan(state, published)
        if plan.delete_versions and state.indexed:
            state = self.exporter.confirm(state, state.indexed)
            plan = self._plan(state, published)
        self.exporter.apply(plan)
        self.exporter.write_index(state, deleted=plan.delete_versions)
        shown = published or next(
            (m for m in state.committed if m.version == decision.existing_version), None
        )
        return ExportOutcome(
            decision=decision,
            metadata=shown,
            version_uri=None if shown is None else self.exporter.version_uri(shown.version),
            retention=plan,
            foreign=tuple(foreign),
        )

    def _plan(self, state: ExporterDirState, published: ExportMetadata | None) -> RetentionPlan:
        committed = [*state.summaries(), *([published] if published else [])]
        comparator: Comparator | None = getattr(self.strategy, "comparator", None)
        best = None if comparator is None else best_version(committed, comparator)
        rules = self.keep_rules
        return plan_retention(
            committed,
            self.strategy.keep_rules() if rules is None else rules,
            best=None if best is None else best.version,
            staging=state.staging,
            staging_grace_seconds=self.staging_grace_seconds,
            delete=rules is not None or self.strategy.exports_to_keep is not None,
            invalid=state.invalid,
        )
