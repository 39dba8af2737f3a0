"""EvalResult: JSON round trips (NaN and infinities included) and the Estimator-style flat dict."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.eval_result import EvalResult

metric_names = st.text(min_size=1, max_size=10).filter(lambda name: name != "global_step")

results = st.builds(
    EvalResult,
    step=st.integers(0, 2**62),
    metrics=st.dictionaries(
        metric_names, st.floats(allow_nan=True, allow_infinity=True), max_size=5
    ),
    checkpoint_path=st.one_of(st.none(), st.text(max_size=20)),
    wall_time=st.one_of(st.none(), st.floats(0, 2e9)),
    source=st.one_of(st.none(), st.text(max_size=20)),
)


def _same_metrics(left: EvalResult, right: EvalResult) -> bool:
    return left.metrics.keys() == right.metrics.keys() and all(
        (math.isnan(v) and math.isnan(right.metrics[k])) or v == right.metrics[k]
        for k, v in left.metrics.items()
    )


@given(results)
def test_round_trip_through_strict_json(result: EvalResult) -> None:
    text = json.dumps(result.to_dict(), allow_nan=False)
    back = EvalResult.from_dict(json.loads(text))
    assert _same_metrics(back, result)
    assert (back.step, back.checkpoint_path, back.wall_time, back.source) == (
        result.step,
        result.checkpoint_path,
        result.wall_time,
        result.source,
    )


def test_non_finite_values_become_strings() -> None:
    data = EvalResult(1, {"a": math.nan, "b": math.inf, "c": -math.inf, "d": 2}).to_dict()
    assert data["metrics"] == {"a": "NaN", "b": "Infinity", "c": "-Infinity", "d": 2.0}


def test_estimator_style_flat_dict() -> None:
    result = EvalResult.from_dict({"global_step": 1200, "loss": 0.25, "accuracy": 1})
    assert result == EvalResult(step=1200, metrics={"loss": 0.25, "accuracy": 1.0})


def test_metric_strings_are_parsed_as_numbers() -> None:
    assert EvalResult.from_dict({"step": 1, "metrics": {"loss": "0.5"}}).metrics == {"loss": 0.5}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"loss": 1.0}, r"eval result needs an integer 'step' \(or 'global_step'\), got None"),
        ({"global_step": True, "loss": 1.0}, "got True"),
        ({"global_step": "12", "loss": 1.0}, "got '12'"),
        ({"step": 1.5, "metrics": {}}, "got 1.5"),
        ({"step": 1, "metrics": [1, 2]}, r"eval result 'metrics' must be a mapping, got \[1, 2\]"),
        ({"step": 1, "metrics": {"loss": "low"}}, "metric 'loss' must be a number, got 'low'"),
        ({"step": 1, "metrics": {"loss": None}}, "metric 'loss' must be a number, got None"),
        ({"step": 1, "metrics": {"ok": True}}, "metric 'ok' must be a number, got True"),
        ({"global_step": 1, "loss": [0.5]}, r"metric 'loss' must be a number, got \[0.5\]"),
    ],
)
def test_bad_input_names_the_value(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EvalResult.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("checkpoint_path", 5),
        ("checkpoint_path", ["/m/ckpt-1"]),
        ("source", float("nan")),
        ("source", {"uri": "x"}),
        ("wall_time", "2026-01-01"),
        ("wall_time", True),
    ],
)
def test_a_field_of_the_wrong_type_is_refused_naming_it(field: str, value: object) -> None:
    data = {"step": 1, "metrics": {"loss": 0.5}, field: value}
    with pytest.raises(ValueError, match=f"'{field}' must be a .* got {re.escape(repr(value))}"):
        EvalResult.from_dict(data)


@pytest.mark.parametrize("wall_time", [float("nan"), float("inf"), float("-inf")])
def test_a_wall_time_that_is_not_finite_is_written_as_unknown(wall_time: float) -> None:
    written = EvalResult(1, {"loss": 0.5}, wall_time=wall_time).to_dict()
    assert written["wall_time"] is None
    assert json.dumps(written, allow_nan=False)
    assert EvalResult.from_dict(written).wall_time is None
