"""Serving signature rules: `serving_default` always present, as the Estimator decided it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.savedmodel.export_outputs import (
    DEFAULT_SIGNATURE_KEY,
    ClassificationOutput,
    ExportOutput,
    PredictOutput,
    RegressionOutput,
    serving_signatures,
    takes_serialized_examples,
)

KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


def test_one_output_under_another_key_is_also_the_default() -> None:
    output = PredictOutput()
    assert serving_signatures({"predict": output}) == {
        "predict": output,
        DEFAULT_SIGNATURE_KEY: output,
    }


def test_several_outputs_with_a_default_are_kept_as_given() -> None:
    outputs: dict[str, ExportOutput] = {
        DEFAULT_SIGNATURE_KEY: ClassificationOutput(),
        "predict": PredictOutput(),
    }
    assert serving_signatures(outputs) == outputs


def test_several_outputs_without_a_default_are_rejected_naming_them() -> None:
    with pytest.raises(ValueError, match="several export outputs \\(a, b\\)"):
        serving_signatures({"b": PredictOutput(), "a": RegressionOutput("v")})


def test_no_outputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="export_outputs is empty"):
        serving_signatures({})


@pytest.mark.parametrize("key", ["", "_private", "with space", "a/b", 3])
def test_invalid_keys_are_rejected(key: object) -> None:
    with pytest.raises(ValueError, match="not a valid signature key"):
        serving_signatures({key: PredictOutput()})  # type: ignore[dict-item]


def test_values_must_be_export_outputs() -> None:
    with pytest.raises(TypeError, match="use PredictOutput"):
        serving_signatures({"serving_default": "predict"})  # type: ignore[dict-item]


@given(st.sets(KEYS, min_size=1, max_size=5), st.booleans())
def test_default_is_present_or_the_outputs_are_rejected(keys: set[str], with_default: bool) -> None:
    if with_default:
        keys = keys | {DEFAULT_SIGNATURE_KEY}
    outputs = {key: PredictOutput() for key in keys}
    if len(keys) > 1 and DEFAULT_SIGNATURE_KEY not in keys:
        with pytest.raises(ValueError):
            serving_signatures(outputs)
        return
    signatures = serving_signatures(outputs)
    assert DEFAULT_SIGNATURE_KEY in signatures
    assert set(signatures) == keys | {DEFAULT_SIGNATURE_KEY}
    assert all(signatures[key] is outputs[key] for key in keys)


def test_output_keys_map_signature_outputs_to_predictions() -> None:
    assert PredictOutput().output_keys(("a", "b")) == {"a": "a", "b": "b"}
    assert PredictOutput(("b",)).output_keys(("a", "b")) == {"b": "b"}
    assert ClassificationOutput(scores="probs", classes=None).output_keys(()) == {"scores": "probs"}
    assert RegressionOutput("value").output_keys(()) == {"outputs": "value"}


def test_method_names_and_inputs_follow_tf_serving() -> None:
    assert PredictOutput.method_name == "tensorflow/serving/predict"
    assert ClassificationOutput.method_name == "tensorflow/serving/classify"
    assert RegressionOutput.method_name == "tensorflow/serving/regress"
    assert not takes_serialized_examples(PredictOutput())
    assert takes_serialized_examples(ClassificationOutput())
    assert takes_serialized_examples(RegressionOutput("v"))


def test_empty_declarations_are_rejected() -> None:
    with pytest.raises(ValueError, match="scores, classes, or both"):
        ClassificationOutput(scores=None, classes=None)
    with pytest.raises(ValueError, match="at least one prediction"):
        PredictOutput(keys=())
