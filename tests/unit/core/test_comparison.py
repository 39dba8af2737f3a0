"""Comparators: the seeds' loss_smaller, user compare_fns and the declared MetricComparison."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from airflow_tf_export.core.comparison import (
    CompareFn,
    MetricComparison,
    Verdict,
    best_version,
    format_values,
    loss_smaller,
    ranked_versions,
)
from airflow_tf_export.core.eval_result import EvalResult

from .factories import BASE_VERSION, make_meta

# Plain st.floats() rarely draws an infinity: draw the non-finite values often.
any_float = st.sampled_from([math.nan, math.inf, -math.inf]) | st.floats()


def result(step: int = 1000, **metrics: float) -> EvalResult:
    return EvalResult(step=step, metrics=metrics)


def my_fn(best_eval_result: Mapping[str, Any], current_eval_result: Mapping[str, Any]) -> bool:
    return bool(current_eval_result["accuracy"] > best_eval_result["accuracy"])


# --- loss_smaller (the seeds' default) -------------------------------------------------------


def test_loss_smaller_is_strict() -> None:
    assert loss_smaller({"loss": 0.5}, {"loss": 0.4}) is True
    assert loss_smaller({"loss": 0.4}, {"loss": 0.5}) is False
    assert loss_smaller({"loss": 0.4}, {"loss": 0.4}) is False


def test_loss_smaller_nan_rules() -> None:
    nan = float("nan")
    assert loss_smaller({"loss": 0.4}, {"loss": nan}) is False
    assert loss_smaller({"loss": nan}, {"loss": 0.4}) is True
    assert loss_smaller({"loss": nan}, {"loss": nan}) is False


@pytest.mark.parametrize(
    ("best", "current", "message"),
    [
        ({}, {"loss": 1.0}, "best_eval_result cannot be empty or no loss is found in it."),
        (
            {"acc": 1.0},
            {"loss": 1.0},
            "best_eval_result cannot be empty or no loss is found in it.",
        ),
        ({"loss": 1.0}, {}, "current_eval_result cannot be empty or no loss is found in it."),
        (
            {"loss": 1.0},
            {"acc": 1.0},
            "current_eval_result cannot be empty or no loss is found in it.",
        ),
    ],
)
def test_loss_smaller_keeps_the_seed_messages(
    best: dict[str, float], current: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        loss_smaller(best, current)


@given(any_float, any_float)
def test_loss_smaller_agrees_with_the_default_metric_comparison(
    best: float, current: float
) -> None:
    declared = MetricComparison().compare(result(1, loss=best), result(2, loss=current)).better
    assert loss_smaller({"loss": best}, {"loss": current}) is declared


# --- CompareFn: validation -------------------------------------------------------------------


def test_compare_fn_none_keeps_the_seed_message() -> None:
    with pytest.raises(ValueError, match=r"^`compare_fn` must not be None\.$"):
        CompareFn(None)


def test_compare_fn_must_be_callable() -> None:
    with pytest.raises(ValueError, match="compare_fn must be callable, got 'loss'"):
        CompareFn("loss")  # type: ignore[arg-type]


def test_compare_fn_without_best_argument_is_rejected() -> None:
    def only_current(current_eval_result: Mapping[str, Any]) -> bool:
        return True

    with pytest.raises(
        ValueError, match=r"compare_fn \(.*only_current\) must include best_eval_result"
    ):
        CompareFn(only_current)


def test_compare_fn_without_current_argument_is_rejected() -> None:
    def only_best(best_eval_result: Mapping[str, Any]) -> bool:
        return True

    with pytest.raises(ValueError, match="must include current_eval_result argument"):
        CompareFn(only_best)


def test_compare_fn_with_another_required_argument_is_rejected() -> None:
    def extra(best_eval_result: Any, current_eval_result: Any, threshold: float) -> bool:
        return True

    with pytest.raises(ValueError, match=r"has following not expected args: \['threshold'\]"):
        CompareFn(extra)


def test_compare_fn_with_a_required_keyword_only_argument_is_rejected() -> None:
    def extra(best_eval_result: Any, current_eval_result: Any, *, margin: float) -> bool:
        return True

    with pytest.raises(ValueError, match=r"not expected args: \['margin'\]"):
        CompareFn(extra)


def test_positional_only_names_cannot_be_passed_by_keyword_and_are_rejected() -> None:
    def positional(best_eval_result: Any, current_eval_result: Any, /) -> bool:
        return True

    with pytest.raises(ValueError, match="must include best_eval_result argument"):
        CompareFn(positional)


def test_uninspectable_callable_is_rejected_with_its_name() -> None:
    with pytest.raises(ValueError, match=r"compare_fn \(max\) has no inspectable signature"):
        CompareFn(max)


def test_keyword_only_defaults_kwargs_partial_and_callable_objects_are_accepted() -> None:
    def keyword_only(*, best_eval_result: Any, current_eval_result: Any) -> bool:
        return bool(current_eval_result["loss"] < best_eval_result["loss"])

    def any_keywords(**kwargs: Any) -> bool:
        return bool(kwargs["current_eval_result"]["loss"] < kwargs["best_eval_result"]["loss"])

    def with_margin(best_eval_result: Any, current_eval_result: Any, margin: float) -> bool:
        return bool(current_eval_result["loss"] < best_eval_result["loss"] - margin)

    def with_default(best_eval_result: Any, current_eval_result: Any, margin: float = 0) -> bool:
        return bool(current_eval_result["loss"] < best_eval_result["loss"] - margin)

    class Smaller:
        def __call__(self, best_eval_result: Any, current_eval_result: Any) -> bool:
            return bool(current_eval_result["loss"] < best_eval_result["loss"])

        def method(self, best_eval_result: Any, current_eval_result: Any) -> bool:
            return bool(current_eval_result["loss"] < best_eval_result["loss"])

    fns: list[Callable[..., Any]] = [
        keyword_only,
        any_keywords,
        functools.partial(with_margin, margin=0.1),
        with_default,
        Smaller(),
        Smaller().method,
    ]
    for fn in fns:
        comparator = CompareFn(fn)
        assert comparator.compare(result(1, loss=1.0), result(2, loss=0.5)).better, fn
        assert not comparator.compare(result(1, loss=0.5), result(2, loss=1.0)).better, fn


def test_partial_name_is_readable() -> None:
    def with_margin(best_eval_result: Any, current_eval_result: Any, margin: float) -> bool:
        return True

    comparator = CompareFn(functools.partial(with_margin, margin=0.1))
    assert "functools.partial(" in comparator.describe()
    assert "with_margin" in comparator.describe()


# --- CompareFn: calling ----------------------------------------------------------------------


def test_compare_fn_is_called_by_keyword_whatever_the_declared_order() -> None:
    seen: dict[str, Any] = {}

    def reversed_order(current_eval_result: Any, best_eval_result: Any) -> bool:
        seen.update(best=best_eval_result, current=current_eval_result)
        return True

    CompareFn(reversed_order).compare(result(1000, loss=0.5), result(2000, loss=0.4, auc=0.9))
    assert seen["best"] == {"loss": 0.5, "global_step": 1000}
    assert seen["current"] == {"loss": 0.4, "auc": 0.9, "global_step": 2000}


@pytest.mark.parametrize(
    ("answer", "better"), [(1, True), ("yes", True), (0, False), (None, False)]
)
def test_truthy_answers_mean_better(answer: object, better: bool) -> None:
    def fn(best_eval_result: Any, current_eval_result: Any) -> object:
        return answer

    assert CompareFn(fn).compare(result(1, loss=1.0), result(2, loss=1.0)).better is better


def test_compare_fn_reasons_name_the_function_and_steps_and_end_with_the_best() -> None:
    verdict = CompareFn(my_fn).compare(result(1000, accuracy=0.8), result(2000, accuracy=0.9))
    assert verdict == Verdict(
        True, "compare_fn my_fn says candidate step 2000 is better than best step 1000"
    )
    worse = CompareFn(my_fn).compare(result(1000, accuracy=0.9), result(2000, accuracy=0.8))
    assert (
        worse.reason
        == "compare_fn my_fn says candidate step 2000 is not better than best step 1000"
    )


def test_compare_fn_errors_name_the_function_and_the_steps() -> None:
    with pytest.raises(ValueError) as caught:
        CompareFn(my_fn).compare(result(1000, accuracy=0.8), result(2000, loss=0.1))
    assert str(caught.value) == (
        "compare_fn my_fn failed comparing candidate step 2000 with best step 1000: "
        "KeyError('accuracy')"
    )
    assert isinstance(caught.value.__cause__, KeyError)


def test_compare_fn_check_needs_a_metric() -> None:
    comparator = CompareFn(my_fn)
    comparator.check(result(5, accuracy=0.5))
    assert comparator.comparable(result(5, accuracy=0.5))
    assert not comparator.comparable(result(5))
    with pytest.raises(
        ValueError, match="eval result for step 1200 has no metrics to give to compare_fn my_fn"
    ):
        comparator.check(result(1200))


@given(st.floats(allow_nan=False))
def test_compare_fn_sets_no_bounds(value: float) -> None:
    assert CompareFn(my_fn).admissible(result(1, accuracy=value)).better


def test_compare_fn_never_admits_or_ranks_a_nan_result() -> None:
    comparator = CompareFn(my_fn)
    nan_result = result(7, accuracy=math.nan, loss=0.1)
    assert comparator.admissible(nan_result) == Verdict(
        False,
        "candidate step 7 has NaN accuracy; a NaN result is never better, so compare_fn "
        "my_fn was not asked",
    )
    assert not comparator.comparable(nan_result)


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=20))
def test_compare_fn_rank_key_sorts_better_results_higher(values: list[float]) -> None:
    comparator = CompareFn(my_fn)
    results = [result(i, accuracy=v) for i, v in enumerate(values)]
    ranked = sorted(results, key=comparator.rank_key, reverse=True)
    assert [r.metrics["accuracy"] for r in ranked] == sorted(values, reverse=True)


# --- MetricComparison: validation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": ""}, "metric must be a non-empty metric name, got ''"),
        ({"metric": 3}, "metric must be a non-empty metric name, got 3"),
        ({"higher_is_better": "yes"}, "higher_is_better must be True or False, got 'yes'"),
        ({"min_delta": -0.1}, r"min_delta must be a finite number >= 0, got -0.1"),
        ({"min_delta": math.nan}, "min_delta must be a finite number >= 0, got nan"),
        ({"min_delta": math.inf}, "min_delta must be a finite number >= 0, got inf"),
        ({"min_delta": True}, "min_delta must be a finite number >= 0, got True"),
        ({"min_delta": "0.1"}, "min_delta must be a finite number >= 0, got '0.1'"),
        ({"lower_bound": math.nan}, "lower_bound must be a finite number or None, got nan"),
        ({"upper_bound": -math.inf}, "upper_bound must be a finite number or None, got -inf"),
        ({"upper_bound": "1"}, "upper_bound must be a finite number or None, got '1'"),
        (
            {"lower_bound": 2, "upper_bound": 1},
            "lower_bound 2 must not be greater than upper_bound 1",
        ),
    ],
)
def test_metric_comparison_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MetricComparison(**kwargs)


def test_metric_comparison_check_names_the_metric_and_what_is_available() -> None:
    comparison = MetricComparison("auc")
    with pytest.raises(ValueError) as caught:
        comparison.check(result(1200, loss=0.3, accuracy=0.9))
    assert str(caught.value) == (
        "eval result for step 1200 has no metric 'auc'; it has: accuracy, loss"
    )
    with pytest.raises(ValueError, match="it has: no metrics"):
        comparison.check(result(1200))


# --- MetricComparison: semantics -------------------------------------------------------------


def test_reasons_read_as_one_sentence_ending_with_the_best() -> None:
    comparison = MetricComparison()
    worse = comparison.compare(result(1, loss=0.39), result(2, loss=0.41))
    assert worse == Verdict(False, "candidate loss 0.41 is not better than best loss 0.39")
    better = comparison.compare(result(1, loss=0.41), result(2, loss=0.39))
    assert better == Verdict(True, "candidate loss 0.39 is better than best loss 0.41")
    tie = comparison.compare(result(1, loss=0.4), result(2, loss=0.4))
    assert tie == Verdict(False, "candidate loss 0.4 is not better than (equal to) best loss 0.4")


def test_non_finite_reasons() -> None:
    comparison = MetricComparison()
    assert comparison.compare(result(1, loss=0.4), result(2, loss=math.nan)) == Verdict(
        False, "candidate loss nan is not a number, never better than best loss 0.4"
    )
    assert comparison.compare(result(1, loss=math.nan), result(2, loss=0.4)) == Verdict(
        True, "candidate loss 0.4 is finite, better than best loss nan"
    )


def test_min_delta_reason_and_boundary() -> None:
    comparison = MetricComparison("accuracy", higher_is_better=True, min_delta=0.25)
    short = comparison.compare(result(1, accuracy=0.5), result(2, accuracy=0.625))
    assert short == Verdict(
        False,
        "candidate accuracy 0.625 is not better by at least min_delta 0.25 (only by 0.125) "
        "than best accuracy 0.5",
    )
    assert comparison.compare(result(1, accuracy=0.5), result(2, accuracy=0.75)).better


def test_close_values_are_shown_with_enough_digits_to_differ() -> None:
    verdict = MetricComparison().compare(result(1, loss=0.1234567), result(2, loss=0.1234568))
    assert verdict.reason == "candidate loss 0.1234568 is not better than best loss 0.1234567"
    assert format_values(0.5, 0.5) == ("0.5", "0.5")


@given(
    best=any_float,
    candidate=any_float,
    higher=st.booleans(),
    min_delta=st.sampled_from([0.0, 0.5, 1e-9]),
)
def test_better_exactly_when_strictly_better_by_min_delta_and_non_finite_never(
    best: float, candidate: float, higher: bool, min_delta: float
) -> None:
    comparison = MetricComparison("m", higher_is_better=higher, min_delta=min_delta)
    verdict = comparison.compare(result(1, m=best), result(2, m=candidate))
    if not math.isfinite(candidate):
        expected = False
    elif not math.isfinite(best):
        expected = True
    elif candidate == best:
        expected = False
    else:
        improvement = candidate - best if higher else best - candidate
        expected = improvement > 0 and improvement >= min_delta
    assert verdict.better is expected
    assert verdict.reason.startswith(f"candidate m {format_values(candidate, best)[0]} ")
    assert verdict.reason.endswith(f" best m {format_values(candidate, best)[1]}")


@given(st.floats(allow_nan=False), st.floats(allow_nan=False))
def test_never_better_in_both_directions(first: float, second: float) -> None:
    comparison = MetricComparison()
    forward = comparison.compare(result(1, loss=first), result(2, loss=second)).better
    backward = comparison.compare(result(2, loss=second), result(1, loss=first)).better
    assert not (forward and backward)


def test_infinities_are_never_the_best() -> None:
    comparison = MetricComparison()
    assert comparison.compare(result(1, loss=math.inf), result(2, loss=1e300)).better
    assert not comparison.compare(result(1, loss=math.inf), result(2, loss=math.inf)).better
    assert comparison.compare(result(1, loss=-math.inf), result(2, loss=0.0)).better
    assert not comparison.compare(result(1, loss=0.0), result(2, loss=-math.inf)).better


def test_admissible_bounds_are_inclusive_and_nan_is_never_admissible() -> None:
    comparison = MetricComparison("accuracy", higher_is_better=True, lower_bound=0.5, upper_bound=1)
    assert comparison.admissible(result(1, accuracy=0.5)) == Verdict(
        True, "candidate accuracy 0.5 is within bounds"
    )
    assert comparison.admissible(result(1, accuracy=1.0)).better
    assert comparison.admissible(result(1, accuracy=0.49)) == Verdict(
        False, "candidate accuracy 0.49 is below lower_bound 0.5"
    )
    assert comparison.admissible(result(1, accuracy=1.5)) == Verdict(
        False, "candidate accuracy 1.5 is above upper_bound 1"
    )
    assert comparison.admissible(result(1, accuracy=math.nan)) == Verdict(
        False, "candidate accuracy nan is not a number"
    )
    with pytest.raises(ValueError, match="no metric 'accuracy'"):
        comparison.admissible(result(1, loss=0.1))


def test_describe() -> None:
    assert MetricComparison().describe() == "loss (lower is better)"
    described = MetricComparison("auc", True, 0.01, 0.5, 0.99).describe()
    assert described == "auc (higher is better, min_delta 0.01, lower_bound 0.5, upper_bound 0.99)"


# --- best_version / ranked_versions ----------------------------------------------------------


def test_best_version_ignores_versions_without_a_finite_metric_and_prefers_the_oldest_tie() -> None:
    committed = [
        make_meta(BASE_VERSION + 3, step=30, metrics={"loss": 0.2}),
        make_meta(BASE_VERSION + 1, step=10, metrics={"loss": 0.2}),
        make_meta(BASE_VERSION + 2, step=20, metrics={"accuracy": 0.99}),
        make_meta(BASE_VERSION + 4, step=40),
        make_meta(BASE_VERSION + 5, step=50, metrics={"loss": math.nan}),
    ]
    best = best_version(committed, MetricComparison())
    assert best is not None and best.version == BASE_VERSION + 1
    assert best_version(committed[2:4], MetricComparison()) is None
    assert best_version([], MetricComparison()) is None
    ranked = [m.version for m in ranked_versions(committed, MetricComparison())]
    assert ranked == [BASE_VERSION + 1, BASE_VERSION + 3]


@given(st.lists(any_float, min_size=1, max_size=30), st.booleans())
def test_best_version_holds_the_best_value(values: list[float], higher: bool) -> None:
    committed = [
        make_meta(BASE_VERSION + i, step=i, metrics={"m": v}) for i, v in enumerate(values)
    ]
    comparison = MetricComparison("m", higher_is_better=higher)
    best = best_version(committed, comparison)
    if not any(math.isfinite(v) for v in values):
        assert best is None
        return
    assert best is not None and best.eval_result is not None
    for meta in committed:
        assert meta.eval_result is not None
        assert not comparison.compare(best.eval_result, meta.eval_result).better


@given(st.lists(st.floats(min_value=-10, max_value=10), min_size=1, max_size=25))
def test_compare_fn_and_metric_comparison_rank_alike(values: list[float]) -> None:
    assume(len(set(values)) == len(values))
    committed = [
        make_meta(BASE_VERSION + i, step=i, metrics={"loss": v}) for i, v in enumerate(values)
    ]
    by_metric = [m.version for m in ranked_versions(committed, MetricComparison(), 5)]
    by_fn = [m.version for m in ranked_versions(committed, CompareFn(loss_smaller), 5)]
    assert by_metric == by_fn
