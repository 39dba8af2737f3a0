"""Judging the validating process's answer (its JSON protocol, as validation_worker.py writes
it): a bound naming no output fails the validation instead of going unchecked."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_tf_export.core.validation import ValidationError, parse_thresholds
from airflow_tf_export.savedmodel.validation import ValidationOptions, _judged

SCORES = {
    "dtype": "float32",
    "shape": [2, 1],
    "declared_dtype": "float32",
    "declared_shape": [None, 1],
    "nonfinite": 0,
    "min": 0.5,
    "max": 7.0,
    "digest": "sha256:00",
}
ANSWER: dict[str, Any] = {
    "load_error": None,
    "results": [
        {"tag": "serve", "key": "serving_default", "error": None, "outputs": {"scores": SCORES}}
    ],
    "warmup": None,
}


def judged(thresholds: dict[str, Any]) -> int:
    options = ValidationOptions(thresholds=parse_thresholds(thresholds))
    return _judged(ANSWER, 2, "generated", options, None).examples


def test_a_misspelt_bound_fails_the_validation_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"names \['serving_default/score'\]"):
        judged({"outputs": {"serving_default/score": {"max": 1}}})
    with pytest.raises(ValidationError, match=r"output 'scores' has values in \[0.5, 7.0\]"):
        judged({"outputs": {"serving_default/scores": {"max": 1}}})
    assert judged({"outputs": {"scores": {"max": 8}}, "allow_nonfinite": ["eval/loss"]}) == 2
