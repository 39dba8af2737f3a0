"""Input receivers: what each exported signature takes as input.

TF2 counterparts of the Estimator receiver functions, declared without TensorFlow so that a
model definition can be imported cheaply:

- `RawServingInput`      build_raw_serving_input_receiver_fn: one input tensor per feature.
- `ParsingServingInput`  build_parsing_serving_input_receiver_fn: one batch of serialized
                         tf.Example strings, parsed into the features inside the SavedModel.
- `SupervisedInput`      build_raw_supervised_input_receiver_fn: features plus the label, the
                         inputs of the `train` and `eval` signatures (input_receiver_fn_map).

Every input has a leading batch dimension of unknown size.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tensorflow as tf

# Dtypes a raw input may have; tf.Example holds only int64, float32 and bytes lists.
RAW_DTYPES = frozenset({"bool", "int32", "int64", "float16", "float32", "float64", "string"})
EXAMPLE_DTYPES = frozenset({"int64", "float32", "string"})

# A placeholder op name, which is what a signature input becomes in the graph.
_INPUT_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class Feature:
    """One input per example: its dtype name and its shape without the batch dimension."""

    dtype: str
    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.dtype not in RAW_DTYPES:
            raise ValueError(
                f"unknown feature dtype {self.dtype!r}; use one of {sorted(RAW_DTYPES)}"
            )
        if any(not isinstance(size, int) or size < 1 for size in self.shape):
            raise ValueError(f"feature shape {self.shape!r} must hold positive ints")


@dataclass(frozen=True)
class RawServingInput:
    """Serving input with one tensor per feature, named after the feature."""

    features: Mapping[str, Feature]

    def __post_init__(self) -> None:
        check_input_names(self.features, "RawServingInput feature")


@dataclass(frozen=True)
class ParsingServingInput:
    """Serving input of serialized tf.Example strings, parsed with the feature specs.

    Predict signatures name the input `input_name`; classify and regress signatures name it
    `inputs`, as TF Serving's Classify and Regress APIs require.
    """

    features: Mapping[str, Feature]
    input_name: str = "examples"

    def __post_init__(self) -> None:
        check_input_names(self.features, "ParsingServingInput feature")
        check_input_names({self.input_name: None}, "ParsingServingInput input_name")
        for name, feature in self.features.items():
            if feature.dtype not in EXAMPLE_DTYPES:
                raise ValueError(
                    f"ParsingServingInput feature {name!r} has dtype {feature.dtype!r}; a "
                    f"tf.Example holds only {sorted(EXAMPLE_DTYPES)}"
                )


@dataclass(frozen=True)
class SupervisedInput:
    """Inputs of the `train` and `eval` signatures: the features and the label."""

    features: Mapping[str, Feature]
    label: Feature
    label_name: str = "label"

    def __post_init__(self) -> None:
        check_input_names(self.features, "SupervisedInput feature")
        check_input_names({self.label_name: None}, "SupervisedInput label_name")
        if self.label_name in self.features:
            raise ValueError(f"SupervisedInput label_name {self.label_name!r} is also a feature")


ServingInput = RawServingInput | ParsingServingInput


def check_input_names(names: Mapping[str, object], what: str) -> None:
    """Reject names that cannot become signature inputs (graph placeholder names)."""
    if not names:
        raise ValueError(f"{what}s: at least one is required")
    for name in names:
        if not isinstance(name, str) or not _INPUT_NAME.match(name):
            raise ValueError(
                f"{what} name {name!r} is not a valid input name: use letters, digits, "
                "'_', '.', '-', starting with a letter, digit or '.'"
            )


def tensor_specs(features: Mapping[str, Feature]) -> dict[str, tf.TensorSpec]:
    """One batched tf.TensorSpec per feature, named after it."""
    import tensorflow as tf

    return {
        name: tf.TensorSpec((None, *feature.shape), tf.dtypes.as_dtype(feature.dtype), name)
        for name, feature in features.items()
    }


def label_spec(supervised: SupervisedInput) -> tf.TensorSpec:
    """The batched tf.TensorSpec of the label."""
    import tensorflow as tf

    label = supervised.label
    return tf.TensorSpec(
        (None, *label.shape), tf.dtypes.as_dtype(label.dtype), supervised.label_name
    )


def parse_examples(serialized: Any, features: Mapping[str, Feature]) -> dict[str, Any]:
    """Parse a batch of serialized tf.Example strings into one tensor per feature."""
    import tensorflow as tf

    spec = {
        name: tf.io.FixedLenFeature(feature.shape, tf.dtypes.as_dtype(feature.dtype))
        for name, feature in features.items()
    }
    return dict(tf.io.parse_example(serialized, spec))
