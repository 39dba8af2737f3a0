"""Whether a candidate's eval result beats the best one: a user `compare_fn` or a declared metric.

Comparators know eval results, not versions. Every reason they give ends with the best
result's clause ("... than best loss 0.39"), so a strategy can append " in version <v>" and
prefix "skipped: " and still get one readable sentence.
"""

from __future__ import annotations

import functools
import heapq
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from airflow_tf_export.core.eval_result import EvalFacts, EvalResult
from airflow_tf_export.core.metadata import VersionFacts

LOSS = "loss"
BEST_ARG = "best_eval_result"
CURRENT_ARG = "current_eval_result"
_V = TypeVar("_V", bound=VersionFacts)


@dataclass(frozen=True)
class Verdict:
    """A yes/no answer with the sentence that explains it."""

    better: bool
    reason: str


class Comparator(Protocol):
    """Compares eval results; `better` always means "the candidate should replace the best"."""

    def compare(self, best: EvalResult, candidate: EvalResult) -> Verdict:
        """Whether `candidate` beats `best`; the reason ends with the best result's clause."""
        ...

    def check(self, result: EvalResult) -> None:
        """ValueError naming what `result` lacks to be compared, and what it has."""
        ...

    def comparable(self, result: EvalFacts) -> bool:
        """Whether `result` can be the best: `check(result)` would pass and what is compared
        is a number (a version that is not comparable never counts as the best to beat)."""
        ...

    def admissible(self, candidate: EvalResult) -> Verdict:
        """Whether `candidate` may be exported at all, also when there is no best yet."""
        ...

    def rank_key(self, result: EvalFacts) -> Any:
        """A sort key under which better results sort higher (for `max` and `sorted`)."""
        ...

    def describe(self) -> str:
        """What is compared, e.g. "loss (lower is better)"."""
        ...


def loss_smaller(
    best_eval_result: Mapping[str, Any], current_eval_result: Mapping[str, Any]
) -> bool:
    """The seeds' default compare_fn: True when the current loss is strictly smaller.

    Deliberate fix: a non-finite loss (NaN, inf, -inf) is never better, and a non-finite best
    loss is beaten by any finite current loss (the seeds compared `nan > x`, always False, so
    one NaN export blocked every later one; a loss of -inf did the same as a number).
    """
    if not best_eval_result or LOSS not in best_eval_result:
        raise ValueError("best_eval_result cannot be empty or no loss is found in it.")
    if not current_eval_result or LOSS not in current_eval_result:
        raise ValueError("current_eval_result cannot be empty or no loss is found in it.")
    best = float(best_eval_result[LOSS])
    current = float(current_eval_result[LOSS])
    if not math.isfinite(current):
        return False
    return not math.isfinite(best) or best > current


def flat_eval_dict(result: EvalFacts) -> dict[str, Any]:
    """The Estimator-style dict a compare_fn receives: the metrics plus `global_step`."""
    return {**result.metrics, "global_step": result.step}


def format_value(value: float) -> str:
    """A metric value for a reason, to 6 significant digits."""
    return f"{value:.6g}"


def format_values(first: float, second: float) -> tuple[str, str]:
    """Two values to 6 significant digits, or with more digits when needed to show they differ."""
    for digits in (6, 9):
        pair = f"{first:.{digits}g}", f"{second:.{digits}g}"
        if pair[0] != pair[1] or first == second:
            return pair
    return repr(float(first)), repr(float(second))


def _missing_metric_message(result: EvalResult, metric: str) -> str:
    available = ", ".join(sorted(result.metrics)) or "no metrics"
    return f"eval result for step {result.step} has no metric {metric!r}; it has: {available}"


class CompareFn(Comparator):
    """A user compare_fn(best_eval_result, current_eval_result) -> truthy when current is better.

    Validated like the seeds (the two argument names must be accepted, no other required
    argument), but keyword-only parameters, `**kwargs`, `functools.partial` and callable
    objects are accepted, and the function is always called by keyword (the seeds called it
    positionally when reading event files, swapping arguments declared in the other order).
    A result with a NaN metric is never better: it is not exported and never becomes the
    best, so a NaN evaluation cannot lock out every later candidate as it did in the seeds.
    Infinities are values like any other here: the function sees them and its answer
    stands (a compare_fn keeps its own semantics; a declared MetricComparison never lets a
    non-finite metric be the best).
    """

    def __init__(self, compare_fn: Callable[..., Any] | None) -> None:
        if compare_fn is None:
            raise ValueError("`compare_fn` must not be None.")
        if not callable(compare_fn):
            raise ValueError(f"compare_fn must be callable, got {compare_fn!r}")
        self.compare_fn = compare_fn
        self.fn_name = _callable_name(compare_fn)
        _verify_compare_fn_args(compare_fn, self.fn_name)
        self._rank_key = functools.cmp_to_key(self._order)

    def __repr__(self) -> str:
        return f"CompareFn({self.fn_name})"

    def is_better(self, best: EvalFacts, candidate: EvalFacts) -> bool:
        """Call the user function by keyword with Estimator-style dicts; truthy means better.

        An exception from the user function becomes a ValueError naming it and both steps.
        """
        try:
            answer = self.compare_fn(
                **{BEST_ARG: flat_eval_dict(best), CURRENT_ARG: flat_eval_dict(candidate)}
            )
            return bool(answer)
        except Exception as err:
            raise ValueError(
                f"compare_fn {self.fn_name} failed comparing candidate step {candidate.step} "
                f"with best step {best.step}: {err!r}"
            ) from err

    def compare(self, best: EvalResult, candidate: EvalResult) -> Verdict:
        """Ask the user function; the reason names it and both steps."""
        self.check(candidate)
        better = self.is_better(best, candidate)
        verdict = "better" if better else "not better"
        return Verdict(
            better,
            f"compare_fn {self.fn_name} says candidate step {candidate.step} is {verdict} "
            f"than best step {best.step}",
        )

    def check(self, result: EvalResult) -> None:
        """A compare_fn needs at least one metric (the seeds rejected empty results)."""
        if not result.metrics:
            raise ValueError(
                f"eval result for step {result.step} has no metrics to give to "
                f"compare_fn {self.fn_name}"
            )

    def comparable(self, result: EvalFacts) -> bool:
        """Whether the result has metrics, none of them NaN."""
        return bool(result.metrics) and not _nan_metrics(result)

    def admissible(self, candidate: EvalResult) -> Verdict:
        """No absolute bounds, but a candidate with a NaN metric is never better."""
        nan = _nan_metrics(candidate)
        if nan:
            return Verdict(
                False,
                f"candidate step {candidate.step} has NaN {', '.join(nan)}; a NaN result is "
                f"never better, so compare_fn {self.fn_name} was not asked",
            )
        return Verdict(True, f"compare_fn {self.fn_name} sets no absolute bounds")

    def rank_key(self, result: EvalFacts) -> Any:
        """Order by the user function (better sorts higher)."""
        return self._rank_key(result)

    def describe(self) -> str:
        """Names the user function."""
        return f"compare_fn {self.fn_name}"

    def _order(self, left: EvalFacts, right: EvalFacts) -> int:
        if self.is_better(right, left):
            return 1
        if self.is_better(left, right):
            return -1
        return 0


def _nan_metrics(result: EvalFacts) -> list[str]:
    return sorted(name for name, value in result.metrics.items() if math.isnan(value))


def _callable_name(fn: Callable[..., Any]) -> str:
    if isinstance(fn, functools.partial):
        return f"functools.partial({_callable_name(fn.func)})"
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return str(name) if name else type(fn).__qualname__


def _verify_compare_fn_args(fn: Callable[..., Any], fn_name: str) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"compare_fn ({fn_name}) has no inspectable signature ({err}); pass a Python "
            f"function accepting {BEST_ARG} and {CURRENT_ARG}"
        ) from None
    params = signature.parameters.values()
    by_keyword = {
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    for required in (BEST_ARG, CURRENT_ARG):
        if required not in by_keyword and not any_keyword:
            raise ValueError(
                f"compare_fn ({fn_name}) must include {required} argument "
                f"(accepted by keyword); its parameters are: {signature}"
            )
    unexpected = [
        p.name
        for p in params
        if p.name not in (BEST_ARG, CURRENT_ARG)
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if unexpected:
        raise ValueError(
            f"compare_fn ({fn_name}) has following not expected args: {unexpected}; "
            f"only {BEST_ARG} and {CURRENT_ARG} are passed"
        )


@dataclass(frozen=True)
class MetricComparison(Comparator):
    """A declared comparison on one metric, for people who do not want to write a compare_fn.

    A candidate is better when it improves on the best value by more than zero AND by at
    least `min_delta` (so `min_delta=0` means strictly better; ties are never better). A
    non-finite value (NaN, inf, -inf) is what a broken evaluation gives, never a real best:
    it is never admissible or better, and a committed version with one is not comparable,
    so it never counts as the best to beat (a loss of -inf would otherwise stay "the best"
    forever); a non-finite best is beaten by any finite candidate. `lower_bound`/
    `upper_bound` (inclusive) are absolute limits a candidate must meet to be exported at
    all, including the first export.
    """

    metric: str = LOSS
    higher_is_better: bool = False
    min_delta: float = 0.0
    lower_bound: float | None = None
    upper_bound: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"metric must be a non-empty metric name, got {self.metric!r}")
        if not isinstance(self.higher_is_better, bool):
            raise ValueError(
                f"higher_is_better must be True or False, got {self.higher_is_better!r}"
            )
        if not _is_real(self.min_delta) or not math.isfinite(self.min_delta) or self.min_delta < 0:
            raise ValueError(f"min_delta must be a finite number >= 0, got {self.min_delta!r}")
        for label, bound in (("lower_bound", self.lower_bound), ("upper_bound", self.upper_bound)):
            if bound is not None and (not _is_real(bound) or not math.isfinite(bound)):
                raise ValueError(f"{label} must be a finite number or None, got {bound!r}")
        if (
            self.lower_bound is not None
            and self.upper_bound is not None
            and self.lower_bound > self.upper_bound
        ):
            raise ValueError(
                f"lower_bound {self.lower_bound!r} must not be greater than "
                f"upper_bound {self.upper_bound!r}"
            )

    def value(self, result: EvalResult) -> float:
        """The compared metric of `result` (ValueError when it is missing)."""
        self.check(result)
        return float(result.metrics[self.metric])

    def compare(self, best: EvalResult, candidate: EvalResult) -> Verdict:
        """Compare the metric; see the class docstring for ties, non-finite values, min_delta."""
        new, old = self.value(candidate), self.value(best)
        name = self.metric
        new_text, old_text = format_values(new, old)
        cand = f"candidate {name} {new_text}"
        best_clause = f"best {name} {old_text}"
        if not math.isfinite(new):
            return Verdict(False, f"{cand} is {_non_finite(new)}, never better than {best_clause}")
        if not math.isfinite(old):
            return Verdict(True, f"{cand} is finite, better than {best_clause}")
        if new == old:
            return Verdict(False, f"{cand} is not better than (equal to) {best_clause}")
        improvement = new - old if self.higher_is_better else old - new
        if improvement <= 0:
            return Verdict(False, f"{cand} is not better than {best_clause}")
        if improvement < self.min_delta:
            return Verdict(
                False,
                f"{cand} is not better by at least min_delta {format_value(self.min_delta)} "
                f"(only by {format_value(improvement)}) than {best_clause}",
            )
        return Verdict(True, f"{cand} is better than {best_clause}")

    def check(self, result: EvalResult) -> None:
        """ValueError naming the metric and the metrics the result has."""
        if self.metric not in result.metrics:
            raise ValueError(_missing_metric_message(result, self.metric))

    def comparable(self, result: EvalFacts) -> bool:
        """Whether the result has the metric and it is finite."""
        return self.metric in result.metrics and math.isfinite(result.metrics[self.metric])

    def admissible(self, candidate: EvalResult) -> Verdict:
        """The candidate's metric is a finite number within the (inclusive) bounds."""
        value = self.value(candidate)
        cand = f"candidate {self.metric} {format_value(value)}"
        if not math.isfinite(value):
            return Verdict(False, f"{cand} is {_non_finite(value)}")
        if self.lower_bound is not None and value < self.lower_bound:
            return Verdict(False, f"{cand} is below lower_bound {format_value(self.lower_bound)}")
        if self.upper_bound is not None and value > self.upper_bound:
            return Verdict(False, f"{cand} is above upper_bound {format_value(self.upper_bound)}")
        return Verdict(True, f"{cand} is within bounds")

    def rank_key(self, result: EvalFacts) -> tuple[bool, float]:
        """A non-finite value ranks lowest; then the metric, negated when lower is better."""
        value = float(result.metrics[self.metric])
        if not math.isfinite(value):
            return (False, 0.0)
        return (True, value if self.higher_is_better else -value)

    def describe(self) -> str:
        """E.g. "loss (lower is better, min_delta 0.01, upper_bound 0.5)"."""
        parts = ["higher is better" if self.higher_is_better else "lower is better"]
        if self.min_delta:
            parts.append(f"min_delta {format_value(self.min_delta)}")
        if self.lower_bound is not None:
            parts.append(f"lower_bound {format_value(self.lower_bound)}")
        if self.upper_bound is not None:
            parts.append(f"upper_bound {format_value(self.upper_bound)}")
        return f"{self.metric} ({', '.join(parts)})"


def _non_finite(value: float) -> str:
    """How a reason calls a non-finite value."""
    return "not a number" if math.isnan(value) else "not finite"


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ranked_versions(
    committed: Sequence[_V], comparator: Comparator, n: int | None = None
) -> list[_V]:
    """Committed versions comparable by `comparator`, best first (ties: older version first).

    Versions without an eval result, or without what the comparator needs, are left out.
    Sorting by `rank_key` keeps this O(n log n) for any comparator.
    """
    usable = [
        m for m in committed if m.eval_result is not None and comparator.comparable(m.eval_result)
    ]
    return rank_comparable(usable, comparator, n)


def rank_comparable(
    comparable: Sequence[_V], comparator: Comparator, n: int | None = None
) -> list[_V]:
    """`ranked_versions` of versions known to be comparable by `comparator`."""
    by_version = sorted(comparable, key=lambda m: m.version)

    def key(meta: _V) -> Any:
        result = meta.eval_result
        assert result is not None
        return comparator.rank_key(result)

    if n is None:
        return sorted(by_version, key=key, reverse=True)
    return heapq.nlargest(n, by_version, key=key)


def best_version(committed: Sequence[_V], comparator: Comparator) -> _V | None:
    """The best committed version by `comparator` (the oldest among equals), or None."""
    best = ranked_versions(committed, comparator, 1)
    return best[0] if best else None
