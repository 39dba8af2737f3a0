"""The pure validation decisions: output checks, thresholds, example checks, the record."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_tf_export.core.validation import (
    FeatureSpec,
    OutputReport,
    SignatureRecord,
    Thresholds,
    ValidationError,
    ValidationRecord,
    check_examples,
    generated_examples,
    judge_output,
    parse_thresholds,
)

DTYPES = ("int64", "float32", "string", "bool")
features = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
    st.builds(
        FeatureSpec,
        st.sampled_from(DTYPES),
        st.lists(st.integers(1, 3), max_size=2).map(tuple),
    ),
    min_size=1,
    max_size=4,
)


def report(**fields: object) -> OutputReport:
    base: dict[str, object] = {
        "dtype": "float32",
        "shape": (3, 2),
        "declared_dtype": "float32",
        "declared_shape": (None, 2),
        "min": 0.1,
        "max": 0.9,
    }
    return OutputReport(**{**base, **fields})  # type: ignore[arg-type]


@given(features, st.integers(1, 5))
def test_generated_examples_always_pass_the_check_of_their_spec(spec, count) -> None:
    examples = generated_examples(spec, count)
    assert len(examples) == count
    check_examples(examples, spec, "generated")


@given(features, st.data())
def test_an_example_with_a_wrong_value_names_the_feature_and_the_expected_dtype(spec, data):
    (example,) = generated_examples(spec, 1)
    name = data.draw(st.sampled_from(sorted(spec)))
    wrong = {"string": 1.5, "int64": "x", "float32": "x", "bool": 2}[spec[name].dtype]
    example[name] = [wrong] * spec[name].size
    with pytest.raises(ValidationError) as raised:
        check_examples([example], spec, "file f.tfrecord")
    message = str(raised.value)
    assert f"feature {name!r}" in message
    assert f"dtype {spec[name].dtype} with shape {list(spec[name].shape)}" in message
    assert "file f.tfrecord" in message


@given(features, st.data())
def test_a_missing_feature_or_a_wrong_count_of_values_is_named(spec, data):
    (example,) = generated_examples(spec, 1)
    name = data.draw(st.sampled_from(sorted(spec)))
    short = {**example, name: example[name] + example[name]}
    with pytest.raises(ValidationError, match=f"feature {name!r}"):
        check_examples([short], spec, "definition")
    del example[name]
    with pytest.raises(ValidationError, match=f"lacks feature {name!r}"):
        check_examples([example], spec, "definition")


def test_no_examples_is_refused() -> None:
    with pytest.raises(ValidationError, match="there are none"):
        check_examples([], {"x": FeatureSpec("int64")}, "definition")


@given(st.integers(1, 50), st.lists(st.integers(1, 5), max_size=3))
def test_an_output_of_the_declared_dtype_and_batched_shape_passes(batch, rest) -> None:
    shape = (batch, *rest)
    declared = (None, *rest)
    assert (
        judge_output("s", "o", report(shape=shape, declared_shape=declared), batch, Thresholds())
        is None
    )


@given(st.integers(1, 50), st.integers(1, 50))
def test_a_batch_dimension_that_is_not_the_batch_size_fails(batch, got) -> None:
    why = judge_output("predict", "scores", report(shape=(got, 2)), batch, Thresholds())
    assert (why is None) == (got == batch)
    if why is not None:
        assert "signature 'predict' output 'scores'" in why
        assert f"expected [{batch}, 2]" in why


def test_a_wrong_dtype_fails_naming_signature_and_output() -> None:
    why = judge_output("serving_default", "scores", report(dtype="float64"), 3, Thresholds())
    assert why == (
        "signature 'serving_default' output 'scores' has dtype float64, the signature "
        "declares float32"
    )


@given(st.integers(1, 10))
def test_nonfinite_values_fail_unless_allowed_for_that_output(count) -> None:
    nan = report(nonfinite=count)
    why = judge_output("eval", "loss", nan, 3, Thresholds())
    assert why is not None and f"holds {count} NaN/Inf values" in why and "'eval/loss'" in why
    for allowed in ("eval/loss", "loss"):
        assert (
            judge_output("eval", "loss", nan, 3, Thresholds(allow_nonfinite=frozenset({allowed})))
            is None
        )
    assert (
        judge_output(
            "eval", "loss", nan, 3, Thresholds(allow_nonfinite=frozenset({"predict/loss"}))
        )
        is not None
    )


@given(st.floats(-10, 10), st.floats(-10, 10), st.floats(-10, 10), st.floats(-10, 10))
def test_a_range_threshold_passes_exactly_when_the_values_lie_inside(a, b, low, high) -> None:
    low, high = min(low, high), max(low, high)
    vmin, vmax = min(a, b), max(a, b)
    thresholds = parse_thresholds(
        {"outputs": {"serving_default/scores": {"min": low, "max": high}}}
    )
    why = judge_output("serving_default", "scores", report(min=vmin, max=vmax), 3, thresholds)
    assert (why is None) == (low <= vmin and vmax <= high)
    assert judge_output("predict", "scores", report(min=vmin, max=vmax), 3, thresholds) is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([], "must be a dict"),
        ({"output": {}}, "unknown keys ['output']"),
        ({"outputs": {"s": {"low": 1}}}, "'min' and/or 'max'"),
        ({"outputs": {"s": {"min": 2, "max": 1}}}, "min 2 is above max 1"),
        ({"outputs": {"s": {"min": math.nan}}}, "finite number"),
        ({"allow_nonfinite": "eval/loss"}, "list of output names"),
    ],
)
def test_bad_thresholds_are_named(value: object, message: str) -> None:
    with pytest.raises(ValueError, match="validation_thresholds") as raised:
        parse_thresholds(value)
    assert message in str(raised.value)


@given(
    st.integers(1, 100),
    st.sampled_from(("generated", "file", "definition")),
    st.none() | st.integers(0, 5),
    st.lists(st.integers(0, 9), max_size=3),
)
def test_the_record_round_trips_through_json(examples, source, warmup, shape) -> None:
    out = report(shape=tuple(shape), digest="sha256:ab")
    record = ValidationRecord(
        examples, source, (SignatureRecord("serve", "predict", {"p": out}),), warmup
    )
    again = ValidationRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.to_dict() == record.to_dict()


@given(st.integers(1, 10))
def test_generated_integers_are_class_ids_any_classifier_accepts(count: int) -> None:
    examples = generated_examples({"label": FeatureSpec("int64", (2,))}, count)
    assert {v for e in examples for v in e["label"]} <= {0, 1}


def test_a_range_naming_no_output_is_reported_and_an_allowance_is_not() -> None:
    """A misspelt bound would leave the check it asks for undone (the version published as
    validated): named, with the outputs there are. An allowance that names no output (the
    eval signature of a serve-only export) loosens nothing."""
    outputs = [("serving_default", "scores"), ("predict", "logistic")]
    typo = parse_thresholds({"outputs": {"serving_default/score": {"max": 1}}})
    why = typo.unmatched_ranges(outputs)
    assert why is not None
    assert "['serving_default/score']" in why
    assert "['predict/logistic', 'serving_default/scores']" in why
    fine = parse_thresholds(
        {"outputs": {"serving_default/scores": {"max": 1}, "logistic": {"min": 0}}}
    )
    assert fine.unmatched_ranges(outputs) is None
    loose = parse_thresholds({"allow_nonfinite": ["eval/loss"]})
    assert loose.unmatched_ranges(outputs) is None


@pytest.mark.parametrize("allowed", [5, None, {"eval/loss": True}, "eval/loss"])
def test_allow_nonfinite_that_is_no_list_is_refused_naming_it(allowed: object) -> None:
    with pytest.raises(ValueError, match=r"\['allow_nonfinite'\] must be a list of output names"):
        parse_thresholds({"allow_nonfinite": allowed})
