"""A non-finite metric (NaN, +inf, -inf) is never the best: a candidate with one is never
admissible or better, and a committed version with one never counts as the best to beat (it
is named as ignored), so one broken evaluation cannot lock out every later improvement.
A user compare_fn keeps its own semantics: it sees infinities and decides."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.comparison import (
    CompareFn,
    MetricComparison,
    Verdict,
    best_version,
    loss_smaller,
    ranked_versions,
)
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.eval_wait import MetricBounds, threshold_misses
from airflow_tf_export.core.retention import KeepBest
from airflow_tf_export.core.strategies import BestStrategy, Candidate

from .factories import BASE_VERSION, make_meta

NON_FINITE = [math.nan, math.inf, -math.inf]
# Plain st.floats() rarely draws an infinity: draw each non-finite value often.
any_float = st.one_of(st.sampled_from(NON_FINITE), st.floats())


def result(step: int = 1000, **metrics: float) -> EvalResult:
    return EvalResult(step=step, metrics=metrics)


def candidate(step: int, **metrics: float) -> Candidate:
    return Candidate(f"/model/ckpt-{step}", step, EvalResult(step=step, metrics=metrics))


def test_a_minus_infinity_loss_does_not_lock_out_later_improvements() -> None:
    """The adversarial case: a committed loss of -inf was "the best" forever."""
    committed = [
        make_meta(BASE_VERSION + 1, step=10, metrics={"loss": 0.5}),
        make_meta(BASE_VERSION + 2, step=20, metrics={"loss": -math.inf}),
    ]
    decision = BestStrategy().decide(committed, candidate(30, loss=0.25))
    assert decision.export
    assert decision.reason == (
        f"candidate loss 0.25 is better than best loss 0.5 in version {BASE_VERSION + 1} "
        f"(ignored versions without an eval result usable by loss (lower is better): "
        f"{BASE_VERSION + 2})"
    )
    assert not BestStrategy().decide(committed, candidate(40, loss=0.75)).export


def test_a_plus_infinity_metric_does_not_lock_out_when_higher_is_better() -> None:
    auc = MetricComparison("auc", higher_is_better=True)
    committed = [make_meta(BASE_VERSION + 1, step=10, metrics={"auc": math.inf})]
    decision = BestStrategy(comparison=auc).decide(committed, candidate(20, auc=0.75))
    assert decision.export
    assert decision.reason.startswith("first export: no committed version to compare by auc")
    assert str(BASE_VERSION + 1) in decision.reason


def test_a_non_finite_candidate_is_never_admissible_nor_better() -> None:
    comparison = MetricComparison()
    assert comparison.admissible(result(loss=-math.inf)) == Verdict(
        False, "candidate loss -inf is not finite"
    )
    assert comparison.admissible(result(loss=math.inf)) == Verdict(
        False, "candidate loss inf is not finite"
    )
    assert comparison.admissible(result(loss=math.nan)) == Verdict(
        False, "candidate loss nan is not a number"
    )
    assert comparison.compare(result(1, loss=0.5), result(2, loss=-math.inf)) == Verdict(
        False, "candidate loss -inf is not finite, never better than best loss 0.5"
    )
    assert not BestStrategy().decide([], candidate(10, loss=-math.inf)).export


def test_a_finite_candidate_beats_a_non_finite_best() -> None:
    comparison = MetricComparison()
    assert comparison.compare(result(1, loss=-math.inf), result(2, loss=0.5)) == Verdict(
        True, "candidate loss 0.5 is finite, better than best loss -inf"
    )
    assert comparison.compare(result(1, loss=math.nan), result(2, loss=0.5)) == Verdict(
        True, "candidate loss 0.5 is finite, better than best loss nan"
    )
    for value in NON_FINITE:
        assert not comparison.comparable(result(loss=value))


def test_the_default_compare_fn_treats_infinities_like_nan() -> None:
    """`loss_smaller` stays equivalent to MetricComparison("loss")."""
    assert loss_smaller({"loss": -math.inf}, {"loss": 0.4}) is True
    assert loss_smaller({"loss": math.inf}, {"loss": 0.4}) is True
    assert loss_smaller({"loss": 0.4}, {"loss": -math.inf}) is False
    assert loss_smaller({"loss": -math.inf}, {"loss": -math.inf}) is False


@given(st.lists(any_float, max_size=8), any_float, st.booleans())
def test_default_compare_fn_agrees_with_the_loss_comparison(
    committed: list[float], value: float, higher: bool
) -> None:
    comparison = MetricComparison()
    for old in committed:
        verdict = comparison.compare(result(1, loss=old), result(2, loss=value))
        assert verdict.better is loss_smaller({"loss": old}, {"loss": value})


@given(
    st.lists(any_float, max_size=10),
    any_float,
    st.booleans(),
    st.sampled_from([0.0, 0.1]),
)
def test_best_exports_exactly_a_finite_candidate_that_beats_every_finite_version(
    values: list[float], value: float, higher: bool, min_delta: float
) -> None:
    """Whatever non-finite versions are committed, a finite candidate strictly better (by
    min_delta) than every finite one is exported, and nothing else is."""
    comparison = MetricComparison("m", higher_is_better=higher, min_delta=min_delta)
    committed = [
        make_meta(BASE_VERSION + i, step=i, metrics={"m": v}) for i, v in enumerate(values)
    ]
    decision = BestStrategy(comparison=comparison).decide(committed, candidate(100, m=value))
    finite_values = [v for v in values if math.isfinite(v)]
    best = (max if higher else min)(finite_values, default=None)
    if best is None:
        expected = math.isfinite(value)
    else:
        improvement = value - best if higher else best - value
        expected = math.isfinite(value) and improvement > 0 and improvement >= min_delta
    assert decision.export is expected
    ignored = [BASE_VERSION + i for i, v in enumerate(values) if not math.isfinite(v)]
    if ignored and expected:
        assert "ignored versions" in decision.reason and str(ignored[0]) in decision.reason


@given(st.lists(any_float, min_size=1, max_size=20), st.booleans(), st.integers(1, 5))
def test_no_non_finite_version_is_ever_ranked_best_or_kept_as_best(
    values: list[float], higher: bool, n: int
) -> None:
    comparison = MetricComparison("m", higher_is_better=higher)
    committed = [
        make_meta(BASE_VERSION + i, step=i, metrics={"m": v}) for i, v in enumerate(values)
    ]
    finite_versions = {BASE_VERSION + i for i, v in enumerate(values) if math.isfinite(v)}
    ranked = [m.version for m in ranked_versions(committed, comparison)]
    assert set(ranked) == finite_versions
    best = best_version(committed, comparison)
    assert (best is None) == (not finite_versions)
    selected = set(KeepBest(n, comparison).select(committed))
    assert selected <= finite_versions
    assert len(selected) == min(n, len(finite_versions))


def higher_auc(best_eval_result: Any, current_eval_result: Any) -> bool:
    return bool(current_eval_result["auc"] > best_eval_result["auc"])


def test_a_user_compare_fn_decides_about_infinities_itself() -> None:
    """Only NaN is filtered for a compare_fn; an infinity is a value the function sees."""
    comparator = CompareFn(higher_auc)
    assert comparator.admissible(result(auc=math.inf)).better
    assert comparator.comparable(result(auc=-math.inf))
    committed = [make_meta(BASE_VERSION + 1, step=10, metrics={"auc": math.inf})]
    decision = BestStrategy(compare_fn=higher_auc).decide(committed, candidate(20, auc=0.9))
    assert not decision.export
    assert "compare_fn higher_auc says candidate step 20 is not better" in decision.reason


def test_a_non_finite_value_misses_its_threshold_saying_so() -> None:
    misses = threshold_misses(
        EvalResult(7, {"loss": -math.inf, "auc": math.inf}),
        {"loss": MetricBounds(maximum=0.5), "auc": MetricBounds(minimum=0.8)},
    )
    assert misses == [
        "auc=inf is not a finite number (needs >= 0.8)",
        "loss=-inf is not a finite number (needs <= 0.5)",
    ]
