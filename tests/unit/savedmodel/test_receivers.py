"""Receivers declared without TensorFlow: names, dtypes and shapes are checked up front."""

from __future__ import annotations

import pytest

from airflow_tf_export.savedmodel.receivers import (
    Feature,
    ParsingServingInput,
    RawServingInput,
    SupervisedInput,
)


def test_valid_receivers_are_accepted() -> None:
    features = {"age": Feature("int64"), "embedding.v2": Feature("float32", (4, 2))}
    assert RawServingInput(features).features == features
    assert ParsingServingInput(features).input_name == "examples"
    supervised = SupervisedInput(features, label=Feature("int64"))
    assert supervised.label_name == "label"


@pytest.mark.parametrize("dtype", ["int8", "float", "str", ""])
def test_unknown_dtypes_are_named(dtype: str) -> None:
    with pytest.raises(ValueError, match=f"unknown feature dtype '{dtype}'"):
        Feature(dtype)


@pytest.mark.parametrize("shape", [(0,), (-1,), (2, None)])
def test_shapes_must_be_positive(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="positive ints"):
        Feature("float32", shape)


@pytest.mark.parametrize("name", ["", "has space", "_leading", "a:b", "a/b"])
def test_input_names_must_be_placeholder_names(name: str) -> None:
    with pytest.raises(ValueError, match=f"name {name!r} is not a valid input name"):
        RawServingInput({name: Feature("float32")})


def test_at_least_one_feature_is_required() -> None:
    with pytest.raises(ValueError, match="at least one is required"):
        RawServingInput({})


def test_tf_example_holds_only_three_dtypes() -> None:
    with pytest.raises(ValueError, match="feature 'flag' has dtype 'bool'"):
        ParsingServingInput({"flag": Feature("bool")})


def test_the_label_cannot_shadow_a_feature() -> None:
    with pytest.raises(ValueError, match="label_name 'age' is also a feature"):
        SupervisedInput({"age": Feature("int64")}, label=Feature("int64"), label_name="age")
