"""Positive ownership: retention deletes an uncommitted entry only when it can prove this
package created it (a name in one of its forms, a claim holding its token, a delete marker),
and keeps and reports everything else, e.g. a user's `temp-notes.txt`."""

from __future__ import annotations

import json
from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.core.ownership import (
    claim_body,
    claim_name,
    claim_version,
    is_claim_body,
    is_our_staging_name,
    is_ours,
    staging_name,
)
from airflow_tf_export.core.retention import KeepRule, StagingDir, plan_retention

from .test_retention import committed_strategy, rules_strategy

TOKEN = "0123456789abcdef0123456789abcdef"


def test_staging_names_carry_a_random_id_in_a_recognisable_form() -> None:
    assert staging_name(TOKEN) == f"temp-airflow-tf-export-{TOKEN}"
    assert is_our_staging_name(staging_name(TOKEN))
    assert is_our_staging_name(staging_name(TOKEN) + "/")


@pytest.mark.parametrize("token", ["", "abc", TOKEN.upper(), TOKEN + "0", TOKEN[:-1] + "g", 5])
def test_a_staging_or_claim_token_must_be_32_lowercase_hex_digits(token: object) -> None:
    with pytest.raises(ValueError, match=f"must be 32 lowercase hex digits, got {token!r}"):
        staging_name(token)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must be 32 lowercase hex digits"):
        claim_body(token)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        f"temp-airflow-tf-export-{TOKEN}",
        f"temp-{TOKEN}",  # staging dirs of earlier releases
        f"temp-deleting-{TOKEN}",  # local deletes of earlier releases
    ],
)
def test_our_staging_forms_and_those_of_earlier_releases(name: str) -> None:
    assert is_ours(name)


@pytest.mark.parametrize(
    "name",
    [
        "temp-notes.txt",
        "temp-dataset",
        "temp-dataset/",
        "temp-",
        f"temp-{TOKEN[:-1]}",
        f"temp-{TOKEN}0",
        f"temp-{TOKEN.upper()}",
        f"temp-{TOKEN}.txt",
        f"temp-airflow-tf-export-{TOKEN[:-1]}",
        f"temp-deleting-{TOKEN[:8]}",
        f"xtemp-{TOKEN}",
        f"Temp-{TOKEN}",
        "temp-claim-42",  # a claim is ours only when it holds our token
        "42",  # an integer dir is ours only with our claim or delete marker
        ".airflow-tf-export.lock",
        "README",
    ],
)
def test_anything_else_is_not_ours(name: str) -> None:
    assert not is_ours(name)


@given(st.text(max_size=60))
def test_a_name_is_ours_only_in_one_of_the_forms(name: str) -> None:
    if is_ours(name):
        bare = name.rstrip("/")
        token = bare.rsplit("-", 1)[-1]
        assert bare in {f"temp-{token}", f"temp-deleting-{token}", staging_name(token)}


@given(st.from_regex(r"[0-9a-f]{32}", fullmatch=True), st.sampled_from(["", "deleting-"]))
def test_every_random_id_in_every_form_is_ours(token: str, old_form: str) -> None:
    assert is_ours(staging_name(token))
    assert is_ours(f"temp-{old_form}{token}")
    assert not is_ours(f"temp-{old_form}{token}x")
    assert not is_ours(f"temp-{old_form}{token[1:]}")


def test_claims_are_named_after_their_version() -> None:
    assert claim_name(1_800_000_000) == "temp-claim-1800000000"
    assert claim_version("temp-claim-1800000000") == 1_800_000_000
    assert claim_version("temp-claim-x") is None
    assert claim_version("temp-claim-0") is None
    assert claim_version("1800000000") is None
    for bad in (0, -3):
        with pytest.raises(ValueError, match=f"positive integer version, got {bad}"):
            claim_name(bad)


def test_a_claim_is_ours_when_it_holds_our_token() -> None:
    assert json.loads(claim_body(TOKEN)) == {"token": TOKEN}
    assert is_claim_body(claim_body(TOKEN))
    assert is_claim_body(b'{"token": "%s"}' % TOKEN.encode())  # what earlier releases wrote
    assert is_ours("temp-claim-42", marked=True)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"my notes about version 42",
        b"\xff\xfe",
        b"[]",
        b'{"token": 5}',
        b'{"token": "abc"}',
        b'{"token": "%s"}' % TOKEN.upper().encode(),
        b'{"owner": "someone"}',
    ],
)
def test_anything_else_in_a_claim_named_object_is_not_our_claim(body: bytes) -> None:
    assert not is_claim_body(body)


def test_an_integer_dir_is_ours_only_with_our_claim_or_delete_marker() -> None:
    assert not is_ours("42")
    assert is_ours("42", claimed=True)
    assert is_ours("42", marked=True)


# --- properties of the plan ------------------------------------------------------------------

our_names = st.one_of(
    st.from_regex(r"temp-airflow-tf-export-[0-9a-f]{32}", fullmatch=True),
    st.from_regex(r"temp-(deleting-)?[0-9a-f]{32}", fullmatch=True),
)
any_names = st.one_of(
    our_names,
    st.text(max_size=12).map(lambda t: f"temp-{t}"),
    st.integers(1, 10**9).map(lambda v: f"temp-claim-{v}"),
    st.integers(1, 10**9).map(str),
    st.text(max_size=12),
)


@st.composite
def staging_entries(draw: st.DrawFn) -> list[StagingDir]:
    """Uncommitted entries of every kind, with any facts a scan could report about them."""
    entries = []
    for name in draw(st.lists(any_names, max_size=12, unique=True)):
        claimed = name.isascii() and name.isdigit() and int(name) > 0 and draw(st.booleans())
        entries.append(
            StagingDir(
                name,
                draw(st.floats(-10, 1e6)),
                claim=f"temp-claim-{int(name)}" if claimed else None,
                marked=draw(st.booleans()),
                in_use=draw(st.booleans()),
            )
        )
    return entries


@given(
    committed_strategy,
    rules_strategy,
    staging_entries(),
    st.floats(0, 1e6),
    st.booleans(),
    st.randoms(use_true_random=False),
)
def test_never_deletes_an_entry_it_cannot_prove_it_created(
    committed: list[ExportMetadata],
    rules: list[KeepRule],
    staging: list[StagingDir],
    grace: float,
    delete: bool,
    pick: Random,
) -> None:
    best = pick.choice(committed).version if committed else None
    plan = plan_retention(
        committed, rules, best=best, staging=staging, staging_grace_seconds=grace, delete=delete
    )
    if committed:
        assert max(m.version for m in committed) not in plan.delete_versions
    assert best not in plan.delete_versions
    assert set(plan.delete_versions) <= {m.version for m in committed}
    by_name = {s.name: s for s in staging}
    for name in plan.staging_delete:
        entry = by_name[name]
        assert entry.ours and not entry.in_use and entry.age_seconds > grace
    not_ours = [s.name for s in staging if not s.ours]
    claims = {c for n in plan.staging_delete if (c := by_name[n].claim) and c not in not_ours}
    assert set(plan.claim_delete) == claims, "a claim goes only after its publish"
    assert sorted([*plan.foreign, *plan.not_ours]) == sorted(not_ours)
    assert all(n.isdigit() for n in plan.foreign)
    assert set(plan.in_use) == {s.name for s in staging if s.ours and s.in_use}
    assert set(plan.in_use) <= set(plan.staging_keep)
    assert not set(plan.claim_delete) & set(not_ours)
    reported = [*plan.staging_delete, *plan.staging_keep, *plan.foreign, *plan.not_ours]
    reported += [c for c in plan.claim_delete if c in by_name]
    assert sorted(reported) == sorted(by_name), "every entry is reported exactly once"
