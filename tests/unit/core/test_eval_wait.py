"""What the sensor waits for: argument validation, target selection, thresholds."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.eval_wait import (
    MetricBounds,
    parse_eval_wait,
    parse_thresholds,
    same_checkpoint,
    select_result,
    threshold_misses,
    why_not_found,
)

RESULTS = [  # newest first, as EvalDirReader.newest_first gives them
    EvalResult(300, {"loss": 0.25}),  # half-written: auc not there yet
    EvalResult(200, {"loss": 0.5, "auc": 0.75}, checkpoint_path="/m/model.ckpt-200"),
    EvalResult(100, {"loss": 0.75, "auc": 0.5}, checkpoint_path="/m/model.ckpt-100"),
    EvalResult(50, {}, checkpoint_path="/m/model.ckpt-50"),
]


def _select(exported_step: int | None = None, **kwargs: object) -> int | None:
    result = select_result(RESULTS, parse_eval_wait(**kwargs), exported_step)
    return None if result is None else result.step


def test_min_step_gives_the_newest_result_with_the_wanted_metrics() -> None:
    assert _select(min_step=100) == 300
    assert _select(min_step=100, required_metrics=["auc"]) == 200
    assert _select(min_step=250, required_metrics=["auc"]) is None
    assert _select(min_step="150", thresholds={"auc": {"min": 0.9}}) == 200
    assert _select(min_step=400) is None


def test_checkpoint_target_matches_the_recorded_path() -> None:
    assert _select(checkpoint_path="/m/model.ckpt-100") == 100
    assert _select(checkpoint_path="file:///m/model.ckpt-100/") == 100
    assert _select(checkpoint_path="gs://bucket/m/model.ckpt-200") == 200  # other mount
    assert _select(checkpoint_path="/m/model.ckpt-300") is None  # path not recorded
    assert _select(checkpoint_path="/m/model.ckpt-50") is None  # recorded without metrics


def test_newer_than_exporter_uses_the_exported_step() -> None:
    assert _select(None, newer_than_exporter="best") == 300
    assert _select(200, newer_than_exporter="best", required_metrics=["auc"]) is None
    assert _select(100, newer_than_exporter="best", required_metrics=["auc"]) == 200


def test_same_checkpoint() -> None:
    assert same_checkpoint("/a/model.ckpt-1", "/a/model.ckpt-1")
    assert same_checkpoint("/mnt/gcs/m/ckpt-7", "gs://b/m/ckpt-7")
    assert not same_checkpoint("/a/ckpt-7", "/a/ckpt-70")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one target"),
        ({"min_step": 1, "checkpoint_path": "/m/c-1"}, "exactly one target"),
        ({"min_step": -1}, "min_step must be a non-negative integer, got -1"),
        ({"min_step": "12a"}, "got '12a'"),
        ({"min_step": True}, "got True"),
        ({"min_step": 1.5}, "got 1.5"),
        ({"checkpoint_path": " "}, "checkpoint_path must be a non-empty string"),
        ({"newer_than_exporter": "../x"}, "invalid exporter name '../x'"),
        ({"newer_than_exporter": "123"}, "invalid exporter name '123'"),
        ({"min_step": 1, "export_dir_base": "/e/best"}, "only goes with it; got '/e/best'"),
        ({"newer_than_exporter": "best", "export_dir_base": " "}, "non-empty string"),
        ({"min_step": 1, "required_metrics": "auc"}, "required_metrics must be a list"),
        ({"min_step": 1, "required_metrics": ["auc", ""]}, "non-empty strings"),
        ({"min_step": 1, "thresholds": [0.5]}, "thresholds must be a mapping"),
        ({"min_step": 1, "thresholds": {"auc": 0.8}}, "thresholds['auc'] must be a mapping"),
        ({"min_step": 1, "thresholds": {"auc": {"low": 0.8}}}, "'min' and/or 'max'"),
        ({"min_step": 1, "thresholds": {"auc": {}}}, "'min' and/or 'max'"),
        ({"min_step": 1, "thresholds": {"auc": {"min": "x"}}}, "must be a finite number, got 'x'"),
        ({"min_step": 1, "thresholds": {"auc": {"min": math.nan}}}, "must be a finite number"),
        ({"min_step": 1, "thresholds": {"loss": {"max": "inf"}}}, "finite number, got 'inf'"),
        ({"min_step": 1, "thresholds": {"loss": {"max": -math.inf}}}, "finite number, got -inf"),
        ({"min_step": 1, "thresholds": {"auc": {"min": 0.9, "max": 0.1}}}, "min 0.9 > max 0.1"),
        ({"min_step": 1, "thresholds": {"": {"min": 0.9}}}, "non-empty strings"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_eval_wait(**kwargs)
    assert message in str(error.value)


def test_thresholds_accept_numbers_and_numeric_strings() -> None:
    parsed = parse_thresholds(
        {"auc": {"min": 1}, "loss": {"max": "0.5"}, "f1": {"min": 0, "max": 1}}
    )
    assert parsed == {
        "auc": MetricBounds(1.0, None),
        "loss": MetricBounds(None, 0.5),
        "f1": MetricBounds(0.0, 1.0),
    }
    assert parse_thresholds(None) == {}


def test_threshold_misses_name_the_metric_and_bound() -> None:
    bounds = parse_thresholds({"auc": {"min": 0.8}, "loss": {"max": 0.5}, "f1": {"min": 0.1}})
    result = EvalResult(7, {"auc": 0.7, "loss": math.nan})
    assert threshold_misses(result, bounds) == [
        "auc=0.7 is not >= 0.8",
        "f1 is missing (needs >= 0.1)",
        "loss=nan is not a finite number (needs <= 0.5)",
    ]
    assert threshold_misses(EvalResult(7, {"auc": 0.8, "loss": 0.5, "f1": 0.1}), bounds) == []


@given(
    value=st.sampled_from([math.nan, math.inf, -math.inf]) | st.floats(),
    low=st.none() | st.floats(-10, 10),
    high=st.none() | st.floats(-10, 10),
)
def test_bounds_are_inclusive_and_non_finite_never_passes(
    value: float, low: float | None, high: float | None
) -> None:
    """NaN and infinities never pass: a loss of -inf is no more "<= 0.5" than NaN is."""
    bounds = MetricBounds(low, high)
    expected = (
        math.isfinite(value) and (low is None or value >= low) and (high is None or value <= high)
    )
    assert bounds.admits(value) == expected


def test_why_not_found_says_what_the_newest_result_lacks() -> None:
    by_path = parse_eval_wait(checkpoint_path="/m/model.ckpt-400")
    assert why_not_found([], by_path) == (
        "no evaluation recorded yet; waiting for checkpoint /m/model.ckpt-400"
    )
    assert why_not_found(RESULTS, by_path).startswith(
        "the newest evaluation (step 300) records no checkpoint_path: to wait for checkpoint "
        "/m/model.ckpt-400 the evaluator must write it as the text summary 'checkpoint_path'"
    )
    with_auc = parse_eval_wait(min_step=400, required_metrics=["auc"])
    assert why_not_found(RESULTS, with_auc) == (
        "the newest evaluation (step 300) lacks auc; it has loss; waiting for global step >= 400"
    )
    assert why_not_found(RESULTS[1:], with_auc) == (
        "the newest evaluation (step 200) does not match; waiting for global step >= 400"
    )


@given(
    st.lists(
        st.tuples(st.integers(0, 50), st.sets(st.sampled_from(["loss", "auc", "acc"]))),
        max_size=12,
    ),
    st.integers(0, 50),
    st.sets(st.sampled_from(["loss", "auc"])),
)
def test_min_step_selects_the_newest_complete_result_at_or_above_it(
    seen: list[tuple[int, set[str]]], min_step: int, required: set[str]
) -> None:
    results = sorted(
        (EvalResult(step, dict.fromkeys(metrics, 0.5)) for step, metrics in seen),
        key=lambda r: -r.step,
    )
    wait = parse_eval_wait(min_step=min_step, required_metrics=sorted(required))
    complete = [r for r in results if r.metrics and required <= set(r.metrics)]
    qualifying = [r for r in complete if r.step >= min_step]
    assert select_result(results, wait) == (qualifying[0] if qualifying else None)
