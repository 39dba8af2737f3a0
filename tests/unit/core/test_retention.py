"""Retention: keep rules combined with OR, newest and best always kept, staging grace period."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.comparison import CompareFn, MetricComparison, loss_smaller
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.core.retention import (
    KeepBest,
    KeepEveryHours,
    KeepEverySteps,
    KeepNewest,
    KeepPinned,
    KeepRule,
    PlanItem,
    RetentionPlan,
    StagingDir,
    created_at_seconds,
    plan_retention,
)

from .factories import BASE_VERSION, make_meta

OLD = "temp-airflow-tf-export-" + "0" * 32
NEW = "temp-airflow-tf-export-" + "1" * 32
RUNNING = "temp-airflow-tf-export-" + "2" * 32


def versions(*steps: int, losses: tuple[float, ...] = ()) -> list[ExportMetadata]:
    return [
        make_meta(
            BASE_VERSION + i,
            step=step,
            metrics={"loss": losses[i]} if i < len(losses) else None,
        )
        for i, step in enumerate(steps)
    ]


# --- rule validation -------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "5", None])
@pytest.mark.parametrize(
    ("make", "label"),
    [
        (KeepNewest, "KeepNewest n"),
        (lambda n: KeepBest(n, MetricComparison()), "KeepBest n"),
        (KeepEverySteps, "KeepEverySteps n"),
    ],
)
def test_count_rules_need_a_positive_integer(make: Any, label: str, value: object) -> None:
    with pytest.raises(ValueError) as caught:
        make(value)
    assert str(caught.value) == f"{label} must be a positive integer, got {value!r}"


@pytest.mark.parametrize("hours", [0, -1, math.nan, math.inf, True, "24"])
def test_every_hours_needs_a_positive_finite_number(hours: object) -> None:
    with pytest.raises(ValueError) as caught:
        KeepEveryHours(hours)  # type: ignore[arg-type]
    assert str(caught.value) == f"KeepEveryHours hours must be a positive number, got {hours!r}"


@pytest.mark.parametrize(
    ("pinned", "message"),
    [
        ("123", "KeepPinned versions must be a collection of versions, got '123'"),
        (5, "KeepPinned versions must be a collection of versions, got 5"),
        ([0], "KeepPinned version must be a positive integer, got 0"),
        (["7"], "KeepPinned version must be a positive integer, got '7'"),
        ([True], "KeepPinned version must be a positive integer, got True"),
    ],
)
def test_pinned_needs_positive_integer_versions(pinned: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        KeepPinned(pinned)  # type: ignore[arg-type]
    assert str(caught.value) == message


# --- rules -----------------------------------------------------------------------------------


def test_keep_newest_selects_the_highest_versions() -> None:
    selected = KeepNewest(2).select(versions(1, 2, 3, 4))
    assert selected == {
        BASE_VERSION + 3: "among the 2 newest",
        BASE_VERSION + 2: "among the 2 newest",
    }
    assert KeepNewest(2).name == "newest(2)"
    assert KeepNewest(9).select([]) == {}


def test_keep_best_ranks_by_the_metric_and_skips_versions_without_a_finite_one() -> None:
    committed = versions(1, 2, 3, 4, 5, losses=(0.5, 0.1, 0.3, math.nan))
    rule = KeepBest(2, MetricComparison())
    assert rule.name == "best(2)"
    assert rule.select(committed) == {
        BASE_VERSION + 1: "rank 1 of the 2 best by loss (lower is better)",
        BASE_VERSION + 2: "rank 2 of the 2 best by loss (lower is better)",
    }
    everything = KeepBest(10, MetricComparison()).select(committed)
    assert set(everything) == {BASE_VERSION + i for i in range(3)}


def test_keep_best_with_a_compare_fn() -> None:
    committed = versions(1, 2, 3, losses=(0.5, 0.1, 0.3))
    assert set(KeepBest(1, CompareFn(loss_smaller)).select(committed)) == {BASE_VERSION + 1}


def test_keep_every_steps_keeps_the_oldest_in_each_bucket() -> None:
    committed = [
        make_meta(BASE_VERSION + 0, step=2500),
        make_meta(BASE_VERSION + 1, step=1200),
        make_meta(BASE_VERSION + 2, step=1900),
        make_meta(BASE_VERSION + 3, step=2100),
        make_meta(BASE_VERSION + 4, step=2100),
        make_meta(BASE_VERSION + 5, step=999),
    ]
    rule = KeepEverySteps(1000)
    assert rule.name == "every(1000 steps)"
    assert rule.select(committed) == {
        BASE_VERSION + 5: "first in steps [0, 1000)",
        BASE_VERSION + 1: "first in steps [1000, 2000)",
        BASE_VERSION + 3: "first in steps [2000, 3000)",
    }


def test_keep_every_hours_keeps_the_oldest_in_each_window() -> None:
    times = [
        "2026-11-20T00:30:00Z",
        "2026-11-20T00:10:00+00:00",
        "2026-11-20T03:10:00+02:00",
        "2026-11-20T01:59:59",
        "2026-11-20T02:00:00Z",
    ]
    committed = [make_meta(BASE_VERSION + i, created_at=t) for i, t in enumerate(times)]
    rule = KeepEveryHours(2)
    assert rule.name == "every(2h)"
    assert rule.select(committed) == {
        BASE_VERSION + 1: "first in the 2h window from 2026-11-20T00:00:00Z",
        BASE_VERSION + 4: "first in the 2h window from 2026-11-20T02:00:00Z",
    }
    assert KeepEveryHours(0.5).name == "every(0.5h)"


def test_created_at_must_be_iso_8601() -> None:
    with pytest.raises(ValueError) as caught:
        created_at_seconds(make_meta(BASE_VERSION, created_at="yesterday"))
    assert str(caught.value) == (
        f"version {BASE_VERSION} has created_at 'yesterday', not an ISO-8601 time such as "
        "'2026-01-31T12:00:00Z'"
    )
    assert created_at_seconds(make_meta(1, created_at="1970-01-01T01:00:00Z")) == 3600.0


def test_keep_pinned_selects_existing_pinned_versions() -> None:
    rule = KeepPinned([BASE_VERSION + 1, 42])
    assert rule.name == "pinned"
    assert rule.select(versions(1, 2, 3)) == {BASE_VERSION + 1: "pinned"}


# --- plan_retention: examples ----------------------------------------------------------------


def test_plan_explains_every_decision() -> None:
    committed = versions(10, 20, 30, 40, losses=(0.1, 0.5, 0.6, 0.7))
    plan = plan_retention(
        committed,
        [KeepNewest(2)],
        best=BASE_VERSION,
        staging=[
            StagingDir(OLD, 7200.0),
            StagingDir(NEW, 60.0),
            StagingDir(RUNNING, 1e9, in_use=True),
            StagingDir("9", 3600, claim="temp-claim-9"),
            StagingDir("8", 1e9),
            StagingDir("temp-notes.txt", 1e9),
        ],
        invalid=[(7, "7/export_metadata.json says version 1700000000, but its directory is 7")],
    )
    assert plan.keep_versions == (BASE_VERSION, BASE_VERSION + 2, BASE_VERSION + 3)
    assert plan.delete_versions == (BASE_VERSION + 1,)
    assert plan.staging_delete == (OLD,)
    assert plan.staging_keep == (NEW, RUNNING, "9")
    assert plan.in_use == (RUNNING,)
    assert plan.foreign == ("8",)
    assert plan.not_ours == ("temp-notes.txt",)
    assert plan.explain().splitlines() == [
        f"{BASE_VERSION} keep current-best: the current best version",
        f"{BASE_VERSION + 1} delete: matched no keep rule",
        f"{BASE_VERSION + 2} keep newest(2): among the 2 newest",
        f"{BASE_VERSION + 3} keep newest-committed, newest(2): the newest committed version; "
        "among the 2 newest",
        f"{OLD} delete: staging dir older than the 3600s grace period",
        f"{NEW} keep: staging dir within the 3600s grace period",
        f"{RUNNING} keep: staging dir in use by a running export",
        "9 keep: unfinished publish or delete of ours within the 3600s grace period",
        "8 keep foreign: no export_metadata.json and no publish claim, so not written by this "
        "product (e.g. a tf.estimator export); never deleted automatically and not a committed "
        "version",
        "temp-notes.txt keep not ours: not in a form this product creates "
        "(temp-airflow-tf-export-<32 hex>, temp-claim-<version> holding a token, or from "
        "earlier releases temp-<32 hex> and temp-deleting-<32 hex>); never deleted "
        "automatically",
        "7 keep invalid: 7/export_metadata.json says version 1700000000, but its directory is "
        "7; not a committed version, never deleted automatically",
    ]


def test_deletion_disabled_keeps_every_version_but_cleans_old_staging_dirs() -> None:
    plan = plan_retention(
        versions(1, 2, 3), [KeepNewest(1)], delete=False, staging=[StagingDir(OLD, 1e6)]
    )
    assert plan.delete_versions == ()
    assert {item.rule for item in plan.items} == {"deletion disabled"}
    assert plan.items[0] == PlanItem(
        BASE_VERSION, True, "deletion disabled", "exports_to_keep is None: nothing is deleted"
    )
    assert plan.staging_delete == (OLD,)


def test_empty_plan() -> None:
    plan = plan_retention([], [KeepNewest(3)])
    assert plan == RetentionPlan((), (), ())
    assert plan.explain() == ""


@pytest.mark.parametrize("grace", [-1, math.nan, True, "60"])
def test_staging_grace_must_be_a_number_not_below_zero(grace: object) -> None:
    with pytest.raises(ValueError) as caught:
        plan_retention([], [], staging_grace_seconds=grace)  # type: ignore[arg-type]
    assert str(caught.value) == f"staging_grace_seconds must be a number >= 0, got {grace!r}"


def test_best_must_be_committed() -> None:
    with pytest.raises(ValueError, match="best version 7 is not among the committed versions"):
        plan_retention(versions(1), [], best=7)


def test_duplicate_versions_are_rejected() -> None:
    duplicated = [make_meta(BASE_VERSION, step=1), make_meta(BASE_VERSION, step=2)]
    with pytest.raises(ValueError, match=f"version {BASE_VERSION} is listed twice"):
        plan_retention(duplicated, [])


# --- plan_retention: properties --------------------------------------------------------------

rules_strategy = st.lists(
    st.one_of(
        st.builds(KeepNewest, st.integers(1, 5)),
        st.builds(KeepBest, st.integers(1, 5), st.just(MetricComparison())),
        st.builds(KeepEverySteps, st.integers(1, 500)),
        st.builds(KeepEveryHours, st.sampled_from([0.5, 1, 24])),
        st.builds(KeepPinned, st.sets(st.integers(BASE_VERSION, BASE_VERSION + 40), max_size=4)),
    ),
    max_size=4,
)


def _iso(seconds: int) -> str:
    """A UTC timestamp `seconds` after 2026-11-20T00:00:00Z (up to a few days)."""
    day, rest = divmod(seconds, 86400)
    return f"2026-11-{20 + day:02d}T{rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}Z"


committed_strategy = st.lists(
    st.tuples(
        st.integers(BASE_VERSION, BASE_VERSION + 40),
        st.integers(0, 2000),
        st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        st.integers(0, 3 * 24 * 3600),
    ),
    max_size=30,
    unique_by=lambda t: t[0],
).map(
    lambda rows: [
        make_meta(
            version,
            step=step,
            metrics=None if loss is None else {"loss": loss},
            created_at=_iso(seconds),
        )
        for version, step, loss, seconds in rows
    ]
)


@given(committed_strategy, rules_strategy, st.booleans())
def test_kept_set_is_the_union_of_the_rules_plus_newest_and_best(
    committed: list[ExportMetadata], rules: list[KeepRule], with_best: bool
) -> None:
    best = None
    if with_best and committed:
        best = min(committed, key=lambda m: m.global_step).version
    plan = plan_retention(committed, rules, best=best)
    expected: set[int] = set()
    for rule in rules:
        expected |= set(rule.select(committed))
    if committed:
        expected.add(max(m.version for m in committed))
    if best is not None:
        expected.add(best)
    assert set(plan.keep_versions) == expected
    assert set(plan.keep_versions) | set(plan.delete_versions) == {m.version for m in committed}
    assert not set(plan.keep_versions) & set(plan.delete_versions)
    assert [item.version for item in plan.items] == sorted(m.version for m in committed)
    if committed:
        assert max(m.version for m in committed) not in plan.delete_versions
    assert best not in plan.delete_versions
    assert len(plan.explain().splitlines()) == len(committed)


@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.from_regex(r"temp-airflow-tf-export-[0-9a-f]{32}", fullmatch=True),
                st.text("temp-abc0123456789", min_size=1, max_size=8),
            ),
            st.floats(-10, 10_000),
            st.booleans(),
        ),
        max_size=10,
        unique_by=lambda row: row[0],
    ),
    st.floats(0, 5000),
)
def test_staging_dirs_are_deleted_only_after_the_grace_period(
    rows: list[tuple[str, float, bool]], grace: float
) -> None:
    """Our staging dirs age out unless in use; an integer name without a claim is foreign
    and any other name not ours; both are kept."""
    staging = [StagingDir(name, age, in_use=in_use) for name, age, in_use in rows]
    plan = plan_retention([], [], staging=staging, staging_grace_seconds=grace)
    ours = [s for s in staging if s.name.startswith("temp-airflow-tf-export-")]
    expired = [s.name for s in ours if s.age_seconds > grace and not s.in_use]
    assert list(plan.staging_delete) == expired
    assert list(plan.staging_keep) == [s.name for s in ours if s.name not in expired]
    assert list(plan.in_use) == [s.name for s in ours if s.in_use]
    assert list(plan.foreign) == [s.name for s in staging if s.name.isdigit() and int(s.name)]
    assert set(plan.not_ours) == {s.name for s in staging} - {s.name for s in ours} - set(
        plan.foreign
    )


@given(committed_strategy, st.integers(1, 6))
def test_keep_best_selects_the_n_best_losses(committed: list[ExportMetadata], n: int) -> None:
    selected = KeepBest(n, MetricComparison()).select(committed)
    usable = [
        m
        for m in committed
        if m.eval_result is not None and math.isfinite(m.eval_result.metrics["loss"])
    ]
    assert len(selected) == min(n, len(usable))

    def rank(meta: ExportMetadata) -> tuple[bool, float]:
        assert meta.eval_result is not None
        value = meta.eval_result.metrics["loss"]
        return (True, -value)

    if selected:
        worst_kept = min(rank(m) for m in usable if m.version in selected)
        assert all(rank(m) <= worst_kept for m in usable if m.version not in selected)
