"""Retention of uncommitted entries: integer dirs without metadata are deleted only when a
publish claim or a delete marker proves they are ours (a GCS publish or delete cut short);
foreign ones (e.g. a tf.estimator export) are reported and kept, whatever the rules, `delete`
and the clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.core.retention import KeepNewest, KeepRule, StagingDir, plan_retention

from .factories import BASE_VERSION, make_meta
from .test_retention import committed_strategy, rules_strategy

ESTIMATOR_VERSION = 1_580_000_000


def test_a_foreign_version_is_kept_and_explained_even_with_deletion_enabled() -> None:
    foreign = StagingDir(str(ESTIMATOR_VERSION), age_seconds=1e9)
    committed = [make_meta(BASE_VERSION + 1), make_meta(BASE_VERSION + 2)]
    for delete in (True, False):
        plan = plan_retention(
            committed, [KeepNewest(1)], staging=[foreign], staging_grace_seconds=0, delete=delete
        )
        assert plan.foreign == (str(ESTIMATOR_VERSION),)
        assert ESTIMATOR_VERSION not in plan.delete_versions + plan.keep_versions
        assert plan.staging_delete == plan.staging_keep == plan.claim_delete == ()
        assert plan.explain().splitlines()[-1] == (
            f"{ESTIMATOR_VERSION} keep foreign: no export_metadata.json and no publish claim, so "
            "not written by this product (e.g. a tf.estimator export); never deleted "
            "automatically and not a committed version"
        )


def test_a_name_beyond_int64_is_kept_as_foreign_and_explained() -> None:
    beyond = StagingDir("99999999999999999999", age_seconds=1e9)
    plan = plan_retention([make_meta(BASE_VERSION)], [KeepNewest(1)], staging=[beyond])
    assert plan.foreign == ("99999999999999999999",)
    assert plan.foreign_versions == (99999999999999999999,)
    assert plan.staging_delete == plan.claim_delete == ()
    assert plan.explain().splitlines()[-1] == (
        "99999999999999999999 keep foreign: numbered beyond 9223372036854775807, the highest "
        "version TF Serving can serve (int64), so not a version; never deleted automatically "
        "and never numbered after"
    )


def test_an_abandoned_publish_goes_with_its_claim_after_the_grace_period() -> None:
    version, claim = str(BASE_VERSION), f"temp-claim-{BASE_VERSION}"
    old = [StagingDir(version, 7200, claim=claim), StagingDir(claim, 7300, marked=True)]
    plan = plan_retention([], [], staging=old, delete=False)
    assert (plan.staging_delete, plan.claim_delete, plan.staging_keep) == ((version,), (claim,), ())
    assert plan.explain().splitlines() == [
        f"{version} delete: unfinished publish or delete of ours older than the 3600s grace period",
        f"{claim} delete: claim of an abandoned publish, deleted after it",
    ]

    # Files uploaded recently make the publish young: its old claim is kept with it.
    young = [StagingDir(version, 60, claim=claim), StagingDir(claim, 7300, marked=True)]
    plan = plan_retention([], [], staging=young)
    assert (plan.staging_delete, plan.claim_delete, plan.staging_keep) == ((), (), (version, claim))


def test_an_interrupted_delete_of_ours_is_cleaned_up_after_the_grace_period() -> None:
    """A version dir without metadata holding our delete marker: a GCS delete cut short."""
    version = str(BASE_VERSION)
    old = plan_retention([], [], staging=[StagingDir(version, 7200, marked=True)])
    assert (old.staging_delete, old.foreign) == ((version,), ())
    young = plan_retention([], [], staging=[StagingDir(version, 60, marked=True)])
    assert (young.staging_keep, young.foreign) == ((version,), ())


def test_a_claim_must_be_named_after_its_version() -> None:
    with pytest.raises(ValueError, match="the claim of '5' must be named temp-claim-5, got '7'"):
        StagingDir("5", 0, claim="7")
    with pytest.raises(ValueError, match="got 'temp-claim-6'"):
        StagingDir("5", 0, claim="temp-claim-6")
    with pytest.raises(ValueError, match="only an integer dir has a publish claim"):
        StagingDir("temp-x", 0, claim="temp-claim-6")


# --- properties ------------------------------------------------------------------------------

# Foreign versions, abandoned publishes and committed versions never share a number (a scan
# gives each integer dir exactly one of these roles).
foreign_strategy = st.lists(
    st.tuples(st.integers(1, 10**9), st.floats(-1e12, 1e12)), max_size=8, unique_by=lambda t: t[0]
)
publish_strategy = st.lists(
    st.tuples(
        st.integers(2 * 10**9, 3 * 10**9),
        st.floats(-1e12, 1e12),
        st.one_of(st.none(), st.floats(-1e12, 1e12)),
    ),
    max_size=8,
    unique_by=lambda t: t[0],
)
temp_strategy = st.lists(
    st.tuples(st.from_regex(r"[0-9a-f]{32}", fullmatch=True), st.floats(-1e12, 1e12)),
    max_size=5,
    unique_by=lambda t: t[0],
)


@given(
    committed_strategy,
    rules_strategy,
    foreign_strategy,
    publish_strategy,
    temp_strategy,
    st.floats(0, 1e12),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_foreign_versions_are_never_deleted_and_claims_follow_their_publish(
    committed: list[ExportMetadata],
    rules: list[KeepRule],
    foreign: list[tuple[int, float]],
    publishes: list[tuple[int, float, float | None]],
    temps: list[tuple[str, float]],
    grace: float,
    delete: bool,
    shuffler: object,
) -> None:
    staging = [StagingDir(str(v), age) for v, age in foreign]
    for version, age, claim_age in publishes:
        claim = f"temp-claim-{version}"
        staging.append(StagingDir(str(version), age, claim=claim))
        if claim_age is not None:  # the claim object itself, as a scan also lists it
            staging.append(StagingDir(claim, claim_age, marked=True))
    staging += [StagingDir(f"temp-airflow-tf-export-{token}", age) for token, age in temps]
    shuffler.shuffle(staging)  # type: ignore[attr-defined]

    plan = plan_retention(
        committed, rules, staging=staging, staging_grace_seconds=grace, delete=delete
    )

    deleted = {*plan.staging_delete, *plan.claim_delete, *map(str, plan.delete_versions)}
    for version, _age in foreign:
        assert str(version) not in deleted
        assert str(version) in plan.foreign
    assert len(plan.foreign) == len(foreign)
    for version, age, _claim_age in publishes:
        claim = f"temp-claim-{version}"
        gone = str(version) in plan.staging_delete
        assert gone == (age > grace)
        assert (claim in plan.claim_delete) == gone
        assert claim not in plan.staging_delete, "a claim is deleted only after its publish"
    named = [*plan.staging_delete, *plan.claim_delete, *plan.staging_keep, *plan.foreign]
    assert sorted(named) == sorted({s.name for s in staging} | set(plan.claim_delete))
