"""Parsing operator arguments into core objects: eval results, comparisons and keep rules.

Operator arguments arrive as plain values, often rendered from templates: an eval result is a
dict from XCom, its JSON text, or (when a template renders a dict without native rendering)
its Python repr. Every parser raises ValueError naming the bad value and what is valid; the
operators turn that into AirflowFailException.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from airflow_tf_export.core.comparison import MetricComparison
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.retention import (
    KeepBest,
    KeepEveryHours,
    KeepEverySteps,
    KeepNewest,
    KeepPinned,
    KeepRule,
)

COMPARISON_KEYS = ("metric", "higher_is_better", "min_delta", "lower_bound", "upper_bound")
KEEP_KEYS = ("newest", "best", "every_steps", "every_hours", "pinned")


def parse_eval_result(value: object, *, argument: str = "eval_result") -> EvalResult | None:
    """An EvalResult from None/"", an EvalResult, a dict, or its JSON text or Python repr."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, EvalResult):
        return value
    data = _parse_text(value, argument) if isinstance(value, str) else value
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{argument} must be an eval result dict (e.g. the EvalMetricsSensor's XCom "
            f"{{'step': 1200, 'metrics': {{'loss': 0.3}}}}), got {value!r}"
        )
    try:
        return EvalResult.from_dict(data)
    except ValueError as err:
        raise ValueError(f"{argument} {value!r} is not a valid eval result: {err}") from None


def _parse_text(text: str, argument: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(
            f"{argument} {text!r} is neither JSON nor a Python dict literal; pass the "
            f"EvalMetricsSensor's XCom (an XComArg, or a template with "
            f"render_template_as_native_obj=True)"
        ) from None


def parse_comparison(spec: object) -> MetricComparison:
    """A MetricComparison from itself or a dict with the keys of COMPARISON_KEYS."""
    if isinstance(spec, MetricComparison):
        return spec
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"comparison must be a MetricComparison or a dict with keys {COMPARISON_KEYS}, "
            f"got {spec!r}"
        )
    unknown = sorted(set(spec) - set(COMPARISON_KEYS))
    if unknown:
        raise ValueError(
            f"comparison {dict(spec)!r} has unknown keys {unknown}; valid keys: {COMPARISON_KEYS}"
        )
    return MetricComparison(**spec)


def parse_keep_rules(spec: object) -> tuple[KeepRule, ...]:
    """Keep rules from a JSON-able spec, e.g.
    `{"newest": 5, "best": {"n": 2, "metric": "auc", "higher_is_better": True},
    "every_steps": 1000, "every_hours": 24, "pinned": [1700000000]}` (rules combine with OR)."""
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"keep must be a non-empty dict with keys from {KEEP_KEYS}, got {spec!r}")
    unknown = sorted(set(spec) - set(KEEP_KEYS))
    if unknown:
        raise ValueError(f"keep {dict(spec)!r} has unknown keys {unknown}; valid keys: {KEEP_KEYS}")
    builders: dict[str, Callable[[Any], KeepRule]] = {
        "newest": KeepNewest,
        "best": _keep_best,
        "every_steps": KeepEverySteps,
        "every_hours": KeepEveryHours,
        "pinned": _keep_pinned,
    }
    return tuple(builders[key](spec[key]) for key in KEEP_KEYS if key in spec)


def best_comparison(spec: Mapping[str, Any]) -> MetricComparison:
    """The comparison that decides the protected current best: the "best" rule's, else loss."""
    best = spec.get("best")
    if isinstance(best, Mapping):
        return parse_comparison({k: v for k, v in best.items() if k != "n"})
    return MetricComparison()


def _keep_best(value: Any) -> KeepRule:
    if isinstance(value, Mapping):
        if "n" not in value:
            raise ValueError(f"keep 'best' {dict(value)!r} needs 'n', the number of versions")
        return KeepBest(value["n"], parse_comparison({k: v for k, v in value.items() if k != "n"}))
    return KeepBest(value, MetricComparison())


def _keep_pinned(value: object) -> KeepRule:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise ValueError(f"keep 'pinned' must be a list of versions, got {value!r}")
    return KeepPinned(tuple(value))


def has_template(value: object) -> bool:
    """Whether a Jinja template is in `value` (so it is known, and checked, only at run time)."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, Mapping):
        return any(has_template(item) for pair in value.items() for item in pair)
    return False
