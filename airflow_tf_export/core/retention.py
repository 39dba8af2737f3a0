"""Which committed versions to keep: composable keep rules combined with OR, and an explained plan.

Each rule selects the versions it keeps and says why. A version is deleted only when no rule
keeps it; the newest committed version and the current best are always kept, whatever the
rules say (a restart can resume from them, and TF Serving serves the newest). Uncommitted
entries of ours are deleted only when no running export holds them and after a grace period.

Only what this product provably created is ever deleted (see `core.ownership`): committed
versions (by the rules), staging entries in the forms it creates, and GCS publishes or
deletes cut short. An integer dir without metadata that is none of these, e.g. a
tf.estimator export, and any directory numbered beyond MAX_VERSION (never a version), is
"foreign"; any other `temp-*` entry, e.g. a user's `temp-notes.txt`, is "not ours"; version
dirs whose metadata cannot be trusted are "invalid". All three are
reported and kept, whatever the rules, `delete` and the clock say.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from airflow_tf_export.core.comparison import Comparator, ranked_versions
from airflow_tf_export.core.metadata import METADATA_FILENAME, ExportMetadata
from airflow_tf_export.core.ownership import STAGING_FORMS, claim_version, is_ours
from airflow_tf_export.core.versions import (
    MAX_VERSION,
    is_beyond_versions,
    is_integer_name,
    parse_version,
)

NEWEST_COMMITTED = "newest-committed"
CURRENT_BEST = "current-best"
DELETION_DISABLED = "deletion disabled"
DEFAULT_STAGING_GRACE_SECONDS = 3600.0


class KeepRule(Protocol):
    """One retention rule: the versions it keeps, each with the reason."""

    @property
    def name(self) -> str:
        """Short and unique enough to read in a plan, e.g. "newest(5)"."""
        ...

    def select(self, versions: Sequence[ExportMetadata]) -> Mapping[int, str]:
        """Version -> why this rule keeps it."""
        ...


def _positive_int(label: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{label} must be a positive integer, got {value!r}")
    return value


@dataclass(frozen=True)
class KeepNewest:
    """Keep the `n` highest version numbers (the seeds' `exports_to_keep`)."""

    n: int

    def __post_init__(self) -> None:
        _positive_int("KeepNewest n", self.n)

    @property
    def name(self) -> str:
        """E.g. "newest(5)"."""
        return f"newest({self.n})"

    def select(self, versions: Sequence[ExportMetadata]) -> Mapping[int, str]:
        """The `n` highest versions."""
        newest = heapq.nlargest(self.n, (m.version for m in versions))
        return {v: f"among the {self.n} newest" for v in newest}


@dataclass(frozen=True)
class KeepBest:
    """Keep the `n` best versions by `comparator` (versions it cannot compare are not selected)."""

    n: int
    comparator: Comparator

    def __post_init__(self) -> None:
        _positive_int("KeepBest n", self.n)

    @property
    def name(self) -> str:
        """E.g. "best(3)"."""
        return f"best({self.n})"

    def select(self, versions: Sequence[ExportMetadata]) -> Mapping[int, str]:
        """The `n` best, ranked by sorting (ties: the older version ranks first)."""
        best = ranked_versions(versions, self.comparator, self.n)
        by = self.comparator.describe()
        return {
            m.version: f"rank {rank} of the {self.n} best by {by}" for rank, m in enumerate(best, 1)
        }


@dataclass(frozen=True)
class KeepEverySteps:
    """Keep one version per global-step bucket `[k*n, (k+1)*n)`: the oldest (lowest step,
    then lowest version) in each, so kept versions stay spaced even as new ones arrive."""

    n: int

    def __post_init__(self) -> None:
        _positive_int("KeepEverySteps n", self.n)

    @property
    def name(self) -> str:
        """E.g. "every(1000 steps)"."""
        return f"every({self.n} steps)"

    def select(self, versions: Sequence[ExportMetadata]) -> Mapping[int, str]:
        """The first version of each step bucket."""
        firsts: dict[int, ExportMetadata] = {}
        for meta in versions:
            bucket = meta.global_step // self.n
            current = firsts.get(bucket)
            if current is None or (meta.global_step, meta.version) < (
                current.global_step,
                current.version,
            ):
                firsts[bucket] = meta
        return {
            m.version: f"first in steps [{b * self.n}, {(b + 1) * self.n})"
            for b, m in firsts.items()
        }


@dataclass(frozen=True)
class KeepEveryHours:
    """Keep one version per `hours`-wide window of `created_at` (UTC, windows aligned to the
    epoch): the oldest (earliest created, then lowest version) in each."""

    hours: float

    def __post_init__(self) -> None:
        if (
            isinstance(self.hours, bool)
            or not isinstance(self.hours, int | float)
            or not math.isfinite(self.hours)
            or self.hours <= 0
        ):
            raise ValueError(f"KeepEveryHours hours must be a positive number, got {self.hours!r}")

    @property
    def name(self) -> str:
        """E.g. "every(24h)"."""
        return f"every({self.hours:g}h)"

    def select(self, versions: Sequence[ExportMetadata]) -> Mapping[int, str]:
        """The first version of each time window."""
        width = self.hours * 3600.0
        firsts: dict[int, tuple[float, int]] = {}
        for meta in versions:
            created = created_at_seconds(meta)
            bucket = math.floor(created / width)
            current = firsts.get(bucket)
            if current is None or (created, meta.version) < current:
                firsts[bucket] = (created, meta.version)
        return {
            version: f"first in the {self.hours:g}h window from {_iso(bucket * width)}"
            for bucket, (_, version) in firsts.items()
        }


def created_at_seconds(meta: ExportMetadata) -> float:
    """`created_at` as epoch seconds; ISO-8601, UTC when it names no offset."""
    try:
        moment = datetime.fromisoformat(meta.created_at)
    except ValueError:
        raise ValueError(
            f"version {meta.version} has created_at {meta.created_at!r}, not an ISO-8601 time "
            f"such as '2026-01-31T12:00:00Z'"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class KeepPinned:
    """Keep the listed versions (e.g. the one being served, or one a person pinned)."""

    versions: Collection[int]

    def __post_init__(self) -> None:
        if isinstance(self.versions, str | bytes) or not isinstance(self.versions, Collection):
            raise ValueError(
                f"KeepPinned versions must be a collection of versions, got {self.versions!r}"
            )
        for version in self.versions:
            _positive_int("KeepPinned version", version)
        object.__setattr__(self, "versions", frozenset(self.versions))

    @property
    def name(self) -> str:
        """ "pinned"."""
        return "pinned"

    def select(self, versions: Sequence[ExportMetadata]) -> Mapping[int, str]:
        """The pinned versions that exist."""
        return {m.version: "pinned" for m in versions if m.version in self.versions}


@dataclass(frozen=True)
class StagingDir:
    """An uncommitted entry of an exporter dir (a `temp-*` dir or object, or an integer dir
    without metadata) and the facts that decide whether this package created it (see
    `core.ownership`).

    `claim` names our `temp-claim-<version>` object of the GCS publish that is writing (or
    wrote) this integer dir, if it exists. `marked`: an integer dir holds our delete marker,
    or a claim-named object holds our claim body. `in_use`: a running export holds this
    staging dir (local disk), so it is kept whatever its age. `age_seconds` counts from the
    newest file (of the entry and its claim)."""

    name: str
    age_seconds: float
    claim: str | None = None
    marked: bool = False
    in_use: bool = False

    def __post_init__(self) -> None:
        if self.claim is None:
            return
        version = parse_version(self.name)
        if version is None:
            raise ValueError(
                f"only an integer dir has a publish claim, got claim {self.claim!r} for "
                f"{self.name!r}"
            )
        if claim_version(self.claim) != version:
            raise ValueError(
                f"the claim of {self.name!r} must be named temp-claim-{version}, got {self.claim!r}"
            )

    @property
    def ours(self) -> bool:
        """Whether we provably created it, so that it may be cleaned up."""
        return is_ours(self.name, claimed=self.claim is not None, marked=self.marked)


@dataclass(frozen=True, slots=True)
class PlanItem:
    """The decision for one committed version."""

    version: int
    keep: bool
    rule: str
    reason: str


@dataclass(frozen=True)
class RetentionPlan:
    """Keep/delete for every committed version and staging dir, explainable line by line."""

    items: tuple[PlanItem, ...]
    staging_delete: tuple[str, ...]
    staging_keep: tuple[str, ...]
    staging_grace_seconds: float = DEFAULT_STAGING_GRACE_SECONDS
    #: Claims of the abandoned publishes in `staging_delete`, deleted after them: a version
    #: dir whose claim is gone would look foreign and be kept forever.
    claim_delete: tuple[str, ...] = ()
    #: Integer dirs without metadata, our claim or our delete marker (e.g. tf.estimator's),
    #: or numbered beyond MAX_VERSION: kept.
    foreign: tuple[str, ...] = ()
    #: Entries of `staging_keep` that a running export holds.
    in_use: tuple[str, ...] = ()
    #: `temp-*` entries in no form this product creates (e.g. a user's `temp-notes.txt`): kept.
    not_ours: tuple[str, ...] = ()
    #: (version, why) of version dirs with metadata that cannot be trusted: kept.
    invalid: tuple[tuple[int, str], ...] = ()

    @property
    def keep_versions(self) -> tuple[int, ...]:
        """Kept versions, ascending."""
        return tuple(i.version for i in self.items if i.keep)

    @property
    def delete_versions(self) -> tuple[int, ...]:
        """Versions to delete, ascending."""
        return tuple(i.version for i in self.items if not i.keep)

    @property
    def uncommitted_delete(self) -> tuple[str, ...]:
        """Every uncommitted entry to delete: staging entries, then the claims that follow."""
        return (*self.staging_delete, *self.claim_delete)

    @property
    def foreign_versions(self) -> tuple[int, ...]:
        """The foreign entries as version numbers (every foreign entry is an integer dir)."""
        return tuple(int(name) for name in self.foreign)

    def explain(self) -> str:
        """One line per version, then per staging dir: "<name> keep|delete <rule>: <reason>"."""
        lines = [
            f"{i.version} keep {i.rule}: {i.reason}"
            if i.keep
            else f"{i.version} delete: {i.reason}"
            for i in self.items
        ]
        grace = f"{self.staging_grace_seconds:g}s"
        lines += [
            f"{n} delete: {_what(n)} older than the {grace} grace period"
            for n in self.staging_delete
        ]
        lines += [
            f"{n} delete: claim of an abandoned publish, deleted after it"
            for n in self.claim_delete
        ]
        lines += [
            f"{n} keep: {_what(n)} in use by a running export"
            if n in self.in_use
            else f"{n} keep: {_what(n)} within the {grace} grace period"
            for n in self.staging_keep
        ]
        lines += [f"{n} keep foreign: {_why_foreign(n)}" for n in self.foreign]
        lines += [f"{n} keep not ours: {_not_ours(n)}" for n in self.not_ours]
        lines += [
            f"{v} keep invalid: {why}; not a committed version, never deleted automatically"
            for v, why in self.invalid
        ]
        return "\n".join(lines)


def _why_foreign(name: str) -> str:
    """Why a foreign entry is kept, in a plan line."""
    if is_beyond_versions(name):
        return (
            f"numbered beyond {MAX_VERSION}, the highest version TF Serving can serve (int64), "
            "so not a version; never deleted automatically and never numbered after"
        )
    return (
        f"no {METADATA_FILENAME} and no publish claim, so not written by this product (e.g. a "
        "tf.estimator export); never deleted automatically and not a committed version"
    )


def _what(name: str) -> str:
    """How an uncommitted entry of ours is called in a plan."""
    if parse_version(name) is not None:
        return "unfinished publish or delete of ours"
    if claim_version(name) is not None:
        return "publish claim"
    return "staging dir"


def _not_ours(name: str) -> str:
    """Why a `temp-*` entry is kept as not ours."""
    if claim_version(name) is not None:
        return (
            "named like a publish claim, but not a claim object holding a token of this "
            "product; never deleted automatically"
        )
    return f"not in a form this product creates ({STAGING_FORMS}); never deleted automatically"


def check_staging_grace(seconds: object) -> float:
    """`seconds` as a float when it is a valid grace period (a number >= 0, inf allowed);
    ValueError naming it otherwise. Every value is safe: retention and exports exclude each
    other through the exporter lock, and a staging dir a running export holds is kept."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ValueError(f"staging_grace_seconds must be a number >= 0, got {seconds!r}")
    return float(seconds)


def plan_retention(
    committed: Sequence[ExportMetadata],
    rules: Sequence[KeepRule],
    *,
    best: int | None = None,
    staging: Sequence[StagingDir] = (),
    staging_grace_seconds: float = DEFAULT_STAGING_GRACE_SECONDS,
    delete: bool = True,
    invalid: Sequence[tuple[int, str]] = (),
) -> RetentionPlan:
    """Keep what any rule keeps, plus the newest committed version and `best`; delete the rest.

    `delete=False` (exports_to_keep=None) keeps every version; it does not stop the cleanup
    of our staging entries older than the grace period, which are never committed versions.
    Uncommitted entries are deleted only when ours (`StagingDir.ours`), not in use and older
    than the grace period; the claim of a kept abandoned publish is kept with it, and the
    claim of a deleted one goes to `claim_delete`. Foreign, not-ours and `invalid` entries
    are only reported.
    """
    grace = check_staging_grace(staging_grace_seconds)
    ordered = sorted(committed, key=lambda m: m.version)
    _check_unique(ordered)
    if best is not None and not any(m.version == best for m in ordered):
        raise ValueError(f"best version {best!r} is not among the committed versions")
    items = _plan_items(ordered, rules, best) if delete else _keep_all(ordered)
    ours = [s for s in staging if s.ours]
    unproven = {s.name for s in staging if not s.ours}
    claims = {s.claim: s.name for s in ours if s.claim is not None and s.claim not in unproven}
    # A claim follows the publish it claims: deleted after it, or kept with it.
    expired = [s for s in ours if s.age_seconds > grace and not s.in_use and s.name not in claims]
    expired_names = {s.name for s in expired}
    claim_delete = [claim for claim, name in claims.items() if name in expired_names]
    kept = [s for s in ours if s.name not in expired_names and s.name not in claim_delete]
    return RetentionPlan(
        items,
        staging_delete=tuple(s.name for s in expired),
        staging_keep=tuple(s.name for s in kept),
        staging_grace_seconds=grace,
        claim_delete=tuple(claim_delete),
        foreign=tuple(s.name for s in staging if not s.ours and is_integer_name(s.name)),
        in_use=tuple(s.name for s in kept if s.in_use),
        not_ours=tuple(s.name for s in staging if not s.ours and not is_integer_name(s.name)),
        invalid=tuple(invalid),
    )


def _check_unique(ordered: Sequence[ExportMetadata]) -> None:
    for before, after in itertools.pairwise(ordered):
        if before.version == after.version:
            raise ValueError(f"version {after.version} is listed twice in the committed versions")


def _keep_all(ordered: Sequence[ExportMetadata]) -> tuple[PlanItem, ...]:
    reason = "exports_to_keep is None: nothing is deleted"
    return tuple(PlanItem(m.version, True, DELETION_DISABLED, reason) for m in ordered)


def _plan_items(
    ordered: Sequence[ExportMetadata], rules: Sequence[KeepRule], best: int | None
) -> tuple[PlanItem, ...]:
    kept: dict[int, list[tuple[str, str]]] = {}
    if ordered:
        kept[ordered[-1].version] = [(NEWEST_COMMITTED, "the newest committed version")]
    if best is not None:
        kept.setdefault(best, []).append((CURRENT_BEST, "the current best version"))
    for rule in rules:
        rule_name = rule.name
        for version, why in rule.select(ordered).items():
            kept.setdefault(version, []).append((rule_name, why))
    items = []
    for meta in ordered:
        reasons = kept.get(meta.version)
        if reasons is None:
            items.append(PlanItem(meta.version, False, "", "matched no keep rule"))
        else:
            rule_names = ", ".join(r for r, _ in reasons)
            items.append(PlanItem(meta.version, True, rule_names, "; ".join(w for _, w in reasons)))
    return tuple(items)
