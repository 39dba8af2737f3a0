"""Operator argument parsing: eval results, comparisons and keep-rule specs."""

from __future__ import annotations

import json
import math

import pytest

from airflow_tf_export.core.comparison import MetricComparison
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.retention import (
    KeepBest,
    KeepEveryHours,
    KeepEverySteps,
    KeepNewest,
    KeepPinned,
)
from airflow_tf_export.operators._args import (
    best_comparison,
    parse_comparison,
    parse_eval_result,
    parse_keep_rules,
)

SENSOR_XCOM = EvalResult(
    step=1200, metrics={"loss": 0.25, "auc": 0.9}, checkpoint_path="/m/ckpt-1200"
).to_dict()


@pytest.mark.parametrize(
    "value",
    [
        SENSOR_XCOM,
        json.dumps(SENSOR_XCOM),
        repr(SENSOR_XCOM),  # what a template renders without render_template_as_native_obj
        EvalResult.from_dict(SENSOR_XCOM),
    ],
    ids=["dict", "json", "python-repr", "eval-result"],
)
def test_parse_eval_result_accepts_every_form_of_the_sensor_xcom(value: object) -> None:
    parsed = parse_eval_result(value)
    assert parsed == EvalResult.from_dict(SENSOR_XCOM)


def test_parse_eval_result_accepts_estimator_flat_dicts() -> None:
    parsed = parse_eval_result({"global_step": 7, "loss": 1.5})
    assert parsed == EvalResult(step=7, metrics={"loss": 1.5})


def test_parse_eval_result_keeps_nan_from_json() -> None:
    parsed = parse_eval_result(json.dumps({"step": 3, "metrics": {"loss": "NaN"}}))
    assert parsed is not None and math.isnan(parsed.metrics["loss"])


@pytest.mark.parametrize("value", [None, "", "   ", "None"])
def test_parse_eval_result_empty_means_absent(value: object) -> None:
    assert parse_eval_result(value) is None


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("not an eval result {", "'not an eval result {'"),
        ("[1, 2]", "'[1, 2]'"),
        ({"metrics": {"loss": 1.0}}, "'metrics'"),
        ({"step": 1, "metrics": {"loss": "high"}}, "'high'"),
        (42, "42"),
    ],
)
def test_parse_eval_result_names_the_bad_value(value: object, named: str) -> None:
    with pytest.raises(ValueError, match="eval_result") as err:
        parse_eval_result(value)
    assert named in str(err.value)


def test_parse_comparison_from_dict_and_instance() -> None:
    spec = {"metric": "auc", "higher_is_better": True, "min_delta": 0.01, "lower_bound": 0.5}
    assert parse_comparison(spec) == MetricComparison("auc", True, 0.01, 0.5)
    existing = MetricComparison("loss")
    assert parse_comparison(existing) is existing


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"metric": "auc", "higher": True}, "'higher'"),
        ({"metric": ""}, "''"),
        ({"metric": "auc", "min_delta": -1}, "-1"),
        ("auc", "'auc'"),
    ],
)
def test_parse_comparison_rejects_bad_specs(spec: object, named: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_comparison(spec)
    assert named in str(err.value)


def test_parse_keep_rules_builds_every_rule_in_a_fixed_order() -> None:
    rules = parse_keep_rules(
        {
            "pinned": [1700000000],
            "every_hours": 24,
            "every_steps": 1000,
            "best": {"n": 2, "metric": "auc", "higher_is_better": True},
            "newest": 5,
        }
    )
    assert rules == (
        KeepNewest(5),
        KeepBest(2, MetricComparison("auc", higher_is_better=True)),
        KeepEverySteps(1000),
        KeepEveryHours(24),
        KeepPinned((1700000000,)),
    )


def test_parse_keep_rules_best_as_a_number_ranks_by_loss() -> None:
    assert parse_keep_rules({"best": 3}) == (KeepBest(3, MetricComparison()),)


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({}, "{}"),
        ({"newest": 5, "oldest": 1}, "'oldest'"),
        ({"newest": 0}, "0"),
        ({"newest": True}, "True"),
        ({"newest": 2.5}, "2.5"),
        ({"best": {"metric": "auc"}}, "'n'"),
        ({"pinned": "1700000000"}, "'1700000000'"),
        ({"every_hours": -1}, "-1"),
        (["newest"], "['newest']"),
    ],
)
def test_parse_keep_rules_rejects_bad_specs(spec: object, named: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_keep_rules(spec)
    assert named in str(err.value)


def test_best_comparison_follows_the_best_rule_else_loss() -> None:
    assert best_comparison({"best": {"n": 1, "metric": "auc", "higher_is_better": True}}) == (
        MetricComparison("auc", higher_is_better=True)
    )
    assert best_comparison({"newest": 3}) == MetricComparison()
