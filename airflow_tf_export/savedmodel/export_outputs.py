"""Export outputs: which predictions each serving signature returns, and under which key.

The Estimator `export_outputs` dict, declared without TensorFlow. Values name entries of the
model's predictions (see `ModelDefinition.predictions`):

- `PredictOutput`         a `tensorflow/serving/predict` signature with the chosen predictions.
- `ClassificationOutput`  a `tensorflow/serving/classify` signature: outputs `classes`
                          (strings) and/or `scores` (floats), input `inputs` (tf.Example).
- `RegressionOutput`      a `tensorflow/serving/regress` signature: output `outputs` (floats),
                          input `inputs` (tf.Example).

`serving_signatures` applies the Estimator rules for the default signature.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

DEFAULT_SIGNATURE_KEY = "serving_default"

_SIGNATURE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class PredictOutput:
    """Returns the named predictions (all of them when `keys` is None) under their own names."""

    keys: tuple[str, ...] | None = None
    method_name: ClassVar[str] = "tensorflow/serving/predict"

    def __post_init__(self) -> None:
        if self.keys is not None and not self.keys:
            raise ValueError("PredictOutput keys must name at least one prediction, or be None")

    def output_keys(self, available: tuple[str, ...]) -> dict[str, str]:
        """Signature output key -> prediction key."""
        return {key: key for key in (self.keys if self.keys is not None else available)}


@dataclass(frozen=True)
class ClassificationOutput:
    """Class scores and/or class names, as TF Serving's Classify API returns them."""

    scores: str | None = "scores"
    classes: str | None = "classes"
    method_name: ClassVar[str] = "tensorflow/serving/classify"

    def __post_init__(self) -> None:
        if self.scores is None and self.classes is None:
            raise ValueError("ClassificationOutput needs scores, classes, or both")

    def output_keys(self, available: tuple[str, ...]) -> dict[str, str]:
        """Signature output key -> prediction key."""
        chosen = {"scores": self.scores, "classes": self.classes}
        return {key: value for key, value in chosen.items() if value is not None}


@dataclass(frozen=True)
class RegressionOutput:
    """One float value per example, as TF Serving's Regress API returns it."""

    value: str
    method_name: ClassVar[str] = "tensorflow/serving/regress"

    def output_keys(self, available: tuple[str, ...]) -> dict[str, str]:
        """Signature output key -> prediction key."""
        return {"outputs": self.value}


ExportOutput = PredictOutput | ClassificationOutput | RegressionOutput

_Output = TypeVar("_Output")


def takes_serialized_examples(output: ExportOutput) -> bool:
    """Classify and regress signatures take one batch of serialized tf.Example strings."""
    return isinstance(output, ClassificationOutput | RegressionOutput)


def serving_signatures(export_outputs: Mapping[str, ExportOutput]) -> dict[str, ExportOutput]:
    """Signature key -> export output, with `serving_default` always present.

    One output under another key is also registered as `serving_default`; several outputs
    must include `serving_default` explicitly.
    """
    if not export_outputs:
        raise ValueError("export_outputs is empty; give at least one export output")
    for key, output in export_outputs.items():
        if not isinstance(key, str) or not _SIGNATURE_KEY.match(key):
            raise ValueError(
                f"export output key {key!r} is not a valid signature key: use letters, digits, "
                "'_', '.', '-', starting with a letter or digit"
            )
        if not isinstance(output, PredictOutput | ClassificationOutput | RegressionOutput):
            raise TypeError(
                f"export output {key!r} is {output!r}; use PredictOutput, "
                "ClassificationOutput or RegressionOutput"
            )
    return with_default_signature(export_outputs)


def with_default_signature(export_outputs: Mapping[str, _Output]) -> dict[str, _Output]:
    """The export outputs by signature key with `serving_default` present, the Estimator's
    rule for any kind of export output: one output under another key is also registered as
    `serving_default`; several outputs must include it; none is a ValueError."""
    if not export_outputs:
        raise ValueError("export_outputs is empty; give at least one export output")
    signatures = dict(export_outputs)
    if DEFAULT_SIGNATURE_KEY not in signatures:
        if len(signatures) > 1:
            raise ValueError(
                f"several export outputs ({', '.join(sorted(map(str, signatures)))}) but none "
                f"is {DEFAULT_SIGNATURE_KEY!r}; name the one served by default "
                f"{DEFAULT_SIGNATURE_KEY!r}"
            )
        (only,) = signatures.values()
        signatures[DEFAULT_SIGNATURE_KEY] = only
    return signatures
