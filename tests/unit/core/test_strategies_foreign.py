"""Strategies with foreign versions (e.g. tf.estimator's own exports in the exporter dir).

The central property: a foreign version whose step (and, for Best, eval result) is known
counts exactly like a committed version of that step and eval result, except that a step a
foreign version holds is never exported again. Foreign versions whose step is unknown are
ignored and named in the reason.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.comparison import MetricComparison
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.foreign import ForeignVersion
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.core.strategies import (
    BestStrategy,
    Candidate,
    Decision,
    ExportStrategy,
    FinalStrategy,
    LatestStrategy,
)

from .factories import BASE_VERSION, make_meta

FOREIGN_BASE = 1_580_000_000  # the Estimator's exports predate ours
MAX_STEP = 12
NOT_OURS = "not written by airflow-tf-export"

losses = st.lists(
    st.one_of(st.floats(0, 4, width=16), st.just(math.nan)),
    min_size=MAX_STEP + 1,
    max_size=MAX_STEP + 1,
)
steps = st.integers(0, MAX_STEP)


@st.composite
def exporter_dirs(
    draw: st.DrawFn,
) -> tuple[list[float], list[ExportMetadata], list[ForeignVersion], Candidate]:
    """Loss per step (one evaluation per step, as the Estimator's event files have), committed
    versions, foreign versions (some unreadable, some without eval result) and a candidate."""
    loss = draw(losses)
    committed = [
        make_meta(
            BASE_VERSION + i,
            step=step,
            metrics={"loss": loss[step]} if evaluated else None,
            checkpoint_path=f"/model/ckpt-{step}" if ours else f"/elsewhere/ckpt-{step}",
        )
        for i, (step, evaluated, ours) in enumerate(
            draw(st.lists(st.tuples(steps, st.booleans(), st.booleans()), max_size=4))
        )
    ]
    foreign = [
        ForeignVersion(FOREIGN_BASE + i, unreadable="corrupt index")
        if step is None
        else ForeignVersion(
            FOREIGN_BASE + i,
            step,
            EvalResult(step, {"loss": loss[step]}) if evaluated else None,
        )
        for i, (step, evaluated) in enumerate(
            draw(st.lists(st.tuples(st.none() | steps, st.booleans()), max_size=4))
        )
    ]
    step = draw(steps)
    candidate = Candidate(f"/model/ckpt-{step}", step, EvalResult(step, {"loss": loss[step]}))
    return loss, committed, foreign, candidate


def as_committed(foreign: Sequence[ForeignVersion]) -> list[ExportMetadata]:
    """Foreign versions with a known step as if they were committed (another checkpoint path)."""
    return [
        make_meta(
            f.version,
            step=f.global_step,
            metrics=None if f.eval_result is None else dict(f.eval_result.metrics),
            checkpoint_path=f"/estimator/model.ckpt-{f.global_step}",
        )
        for f in foreign
        if f.global_step is not None
    ]


STRATEGIES: list[tuple[ExportStrategy, bool]] = [
    (FinalStrategy(name="final"), True),
    (FinalStrategy(name="final"), False),
    (LatestStrategy(name="latest"), False),
    (BestStrategy(name="best"), False),
    (BestStrategy(name="best", comparison=MetricComparison(min_delta=0.25)), False),
]


def decide(
    strategy: ExportStrategy,
    committed: Sequence[ExportMetadata],
    candidate: Candidate,
    final: bool,
    foreign: Sequence[ForeignVersion] = (),
) -> Decision:
    return strategy.decide(committed, candidate, is_the_final_export=final, foreign=foreign)


@pytest.mark.parametrize(("strategy", "final"), STRATEGIES)
@given(case=exporter_dirs())
def test_a_readable_foreign_version_counts_like_a_committed_one_and_its_step_is_never_reexported(
    strategy: ExportStrategy, final: bool, case: Any
) -> None:
    _loss, committed, foreign, candidate = case
    decision = decide(strategy, committed, candidate, final, foreign)
    same_step = [f for f in foreign if f.global_step == candidate.global_step]
    existing = decide(strategy, committed, candidate, final)
    if existing.existing_version is not None:
        assert decision == existing
    elif same_step and strategy.kind != "final":
        holder = min(same_step, key=lambda f: f.version)
        assert not decision.export
        assert decision.reason.startswith(
            f"skipped: step {candidate.global_step} is already exported as {holder.label}"
        )
    elif same_step:
        assert not decision.export
    else:
        merged = [*committed, *as_committed(foreign)]
        assert decision.export == decide(strategy, merged, candidate, final).export


@pytest.mark.parametrize(("strategy", "final"), STRATEGIES)
@given(case=exporter_dirs())
def test_unreadable_foreign_versions_never_change_a_decision_and_are_named(
    strategy: ExportStrategy, final: bool, case: Any
) -> None:
    _loss, committed, foreign, candidate = case
    readable = [f for f in foreign if f.global_step is not None]
    decision = decide(strategy, committed, candidate, final, foreign)
    assert decision.export == decide(strategy, committed, candidate, final, readable).export
    named = (
        decision.existing_version is None
        and decision.reason != "skipped: not the final export"
        and not decision.reason.startswith("skipped: candidate loss")
    )
    for f in foreign:
        if f.global_step is None and named:
            assert f"{f.version} (global step unreadable: corrupt index)" in decision.reason


@given(case=exporter_dirs())
def test_latest_never_publishes_a_step_at_or_below_a_foreign_or_committed_one(case: Any) -> None:
    _loss, committed, foreign, candidate = case
    decision = LatestStrategy(name="latest").decide(committed, candidate, foreign=foreign)
    held = [m.global_step for m in committed] + [
        f.global_step for f in foreign if f.global_step is not None
    ]
    if decision.export:
        assert all(candidate.global_step > step for step in held)
    elif decision.existing_version is None:
        assert any(candidate.global_step <= step for step in held)


@given(case=exporter_dirs())
def test_final_treats_a_foreign_version_of_the_same_or_a_newer_step_as_its_final_export(
    case: Any,
) -> None:
    _loss, committed, foreign, candidate = case
    decision = FinalStrategy(name="final").decide(
        committed, candidate, is_the_final_export=True, foreign=foreign
    )
    newer_foreign = [
        f for f in foreign if f.global_step is not None and f.global_step >= candidate.global_step
    ]
    if newer_foreign and decision.existing_version is None:
        assert not decision.export
        assert "skipped: final export already exists as " in decision.reason


@given(case=exporter_dirs())
def test_best_never_publishes_a_model_not_better_than_a_comparable_foreign_version(
    case: Any,
) -> None:
    _loss, committed, foreign, candidate = case
    decision = BestStrategy(name="best").decide(committed, candidate, foreign=foreign)
    assert candidate.eval_result is not None
    loss = candidate.eval_result.metrics["loss"]
    rivals = [f.eval_result.metrics["loss"] for f in foreign if f.eval_result is not None]
    if decision.export:
        assert not math.isnan(loss)
        assert all(math.isnan(r) or loss < r for r in rivals)
        assert all(f.global_step != candidate.global_step for f in foreign)


# --- reasons, on the Estimator's own numbers (tests/data/estimator/linear_classifier) ---------

ESTIMATOR_BEST = [
    ForeignVersion(1_796_476_015, 100, EvalResult(100, {"loss": 0.5789000988006592})),
    ForeignVersion(1_796_476_018, 125, EvalResult(125, {"loss": 0.5816274881362915})),
]


def test_best_skips_a_worse_candidate_naming_the_best_foreign_version() -> None:
    candidate = Candidate("/m/model.ckpt-150", 150, EvalResult(150, {"loss": 0.6361076831817627}))
    decision = BestStrategy(name="best").decide([], candidate, foreign=ESTIMATOR_BEST)
    assert decision == Decision(
        False,
        "skipped: candidate loss 0.636108 is not better than best loss 0.5789 in foreign "
        f"version 1796476015 (step 100, {NOT_OURS})",
    )


def test_best_exports_a_better_candidate_naming_what_it_beats_and_what_it_ignored() -> None:
    foreign = [*ESTIMATOR_BEST, ForeignVersion(1_796_476_030, 175)]
    foreign.append(ForeignVersion(1_796_476_040, unreadable="no variables/variables.index"))
    committed = [make_meta(BASE_VERSION, step=140, metrics={"loss": 0.6})]
    candidate = Candidate("/m/ckpt-200", 200, EvalResult(200, {"loss": 0.55}))
    decision = BestStrategy(name="best").decide(committed, candidate, foreign=foreign)
    assert decision == Decision(
        True,
        "candidate loss 0.55 is better than best loss 0.5789 in foreign version 1796476015 "
        f"(step 100, {NOT_OURS}) (ignored foreign versions: 1796476030 (step 175: no eval "
        "result), 1796476040 (global step unreadable: no variables/variables.index))",
    )


def test_best_names_a_committed_version_when_it_is_better_than_every_foreign_one() -> None:
    committed = [make_meta(BASE_VERSION, step=140, metrics={"loss": 0.5})]
    candidate = Candidate("/m/ckpt-200", 200, EvalResult(200, {"loss": 0.55}))
    decision = BestStrategy(name="best").decide(committed, candidate, foreign=ESTIMATOR_BEST)
    assert decision == Decision(
        False,
        f"skipped: candidate loss 0.55 is not better than best loss 0.5 in version {BASE_VERSION}",
    )


def test_best_skips_a_step_a_foreign_version_holds_even_without_its_eval_result() -> None:
    candidate = Candidate("/m/model.ckpt-125", 125, EvalResult(125, {"loss": 0.1}))
    foreign = [ForeignVersion(1_796_476_018, 125)]
    decision = BestStrategy(name="best").decide([], candidate, foreign=foreign)
    assert decision == Decision(
        False,
        f"skipped: step 125 is already exported as foreign version 1796476018 (step 125, "
        f"{NOT_OURS}) (ignored foreign versions: 1796476018 (step 125: no eval result))",
    )


def test_best_first_export_says_no_foreign_version_was_comparable() -> None:
    candidate = Candidate("/m/ckpt-1", 1, EvalResult(1, {"auc": 0.7}))
    best = BestStrategy(name="best", comparison=MetricComparison("auc", higher_is_better=True))
    decision = best.decide([], candidate, foreign=ESTIMATOR_BEST)
    assert decision == Decision(
        True,
        "first export: no committed or foreign version to compare by auc (higher is better) "
        "(ignored foreign versions: 1796476015 (step 100: eval result not usable by auc "
        "(higher is better)), 1796476018 (step 125: eval result not usable by auc (higher is "
        "better)))",
    )


def test_best_with_a_compare_fn_counts_foreign_versions_too() -> None:
    def loss_lower(best_eval_result: dict[str, Any], current_eval_result: dict[str, Any]) -> bool:
        return bool(current_eval_result["loss"] < best_eval_result["loss"])

    best = BestStrategy(name="best", compare_fn=loss_lower)
    worse = Candidate("/m/model.ckpt-150", 150, EvalResult(150, {"loss": 0.58}))
    decision = best.decide([], worse, foreign=ESTIMATOR_BEST)
    assert decision.reason == (
        "skipped: compare_fn test_best_with_a_compare_fn_counts_foreign_versions_too.<locals>."
        "loss_lower says candidate step 150 is not better than best step 100 in foreign "
        f"version 1796476015 (step 100, {NOT_OURS})"
    )
    better = Candidate("/m/model.ckpt-150", 150, EvalResult(150, {"loss": 0.5}))
    assert best.decide([], better, foreign=ESTIMATOR_BEST).export


ESTIMATOR_LATEST = [ForeignVersion(1_796_476_018, 125), ForeignVersion(1_796_476_021, 150)]


@pytest.mark.parametrize(
    ("step", "export", "reason"),
    [
        (
            150,
            False,
            f"skipped: step 150 is already exported as foreign version 1796476021 (step 150, "
            f"{NOT_OURS})",
        ),
        (
            125,
            False,
            f"skipped: step 125 is already exported as foreign version 1796476018 (step 125, "
            f"{NOT_OURS})",
        ),
        (
            100,
            False,
            f"skipped: candidate step 100 is older than step 150 in foreign version 1796476021 "
            f"({NOT_OURS})",
        ),
        (
            175,
            True,
            f"candidate step 175 is newer than step 150 in foreign version 1796476021 ({NOT_OURS})",
        ),
    ],
)
def test_latest_reasons_name_the_foreign_version(step: int, export: bool, reason: str) -> None:
    decision = LatestStrategy(name="latest").decide(
        [], Candidate(f"/m/model.ckpt-{step}", step), foreign=ESTIMATOR_LATEST
    )
    assert decision == Decision(export, reason)


def test_latest_first_export_when_every_foreign_step_is_unreadable() -> None:
    foreign = [ForeignVersion(1_580_000_000, unreadable="no saved_model.pb")]
    decision = LatestStrategy(name="latest").decide([], Candidate("/m/ckpt-5", 5), foreign=foreign)
    assert decision == Decision(
        True,
        "first export: step 5, no committed or readable foreign version yet (ignored foreign "
        "versions: 1580000000 (global step unreadable: no saved_model.pb))",
    )


def test_final_reasons_name_the_foreign_final_export() -> None:
    final = FinalStrategy(name="final")
    foreign = [ForeignVersion(1_796_476_021, 150)]
    same = final.decide(
        [], Candidate("/m/model.ckpt-150", 150), is_the_final_export=True, foreign=foreign
    )
    assert same == Decision(
        False,
        f"skipped: final export already exists as foreign version 1796476021 (step 150, "
        f"{NOT_OURS}); candidate step 150 is not newer",
    )
    newer = final.decide(
        [], Candidate("/m/ckpt-300", 300), is_the_final_export=True, foreign=foreign
    )
    assert newer == Decision(
        True,
        f"final export of step 300, newer than step 150 in foreign version 1796476021 ({NOT_OURS})",
    )
