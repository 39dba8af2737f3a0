"""Export outputs of a model_fn: which tensors each signature returns (tf.estimator.export).

The serving kinds, given by a model_fn in `EstimatorSpec.export_outputs`:

- `PredictOutput(outputs)`        `tensorflow/serving/predict`: the named tensors, any inputs.
- `ClassificationOutput(scores, classes)`
                                  `tensorflow/serving/classify`: float `scores` and/or string
                                  `classes`; its input must be one string tensor (serialized
                                  tf.Example protos), named `inputs`.
- `RegressionOutput(value)`       `tensorflow/serving/regress`: one float `outputs` tensor;
                                  one string input `inputs`, as for classify.

`SupervisedOutput` is what the writer makes of the `train` and `eval` specs: `loss`,
`predictions/<key>`, `metrics/<name>/value` and `metrics/<name>/update_op`.

Each builds its SignatureDef for given receiver tensors with `as_signature_def`, which
raises ValueError when the receiver does not fit (the writer then leaves the signature out,
with a log line). The tensors are TF1 graph tensors; TensorFlow is imported in the methods.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_tf_export.savedmodel.errors import DefinitionError

_SEPARATOR = "/"


class ExportOutput:
    """One kind of signature a model can be served or run with."""

    def as_signature_def(self, receiver_tensors: Mapping[str, Any]) -> Any:
        """The SignatureDef of this output for the receiver tensors (input key -> tensor);
        ValueError when they do not fit this kind of signature."""
        raise NotImplementedError


class PredictOutput(ExportOutput):
    """A generic prediction: the given tensors under their keys (`output` for one tensor)."""

    def __init__(self, outputs: Any) -> None:
        self._outputs = _named_tensors(outputs, "output", "PredictOutput")

    @property
    def outputs(self) -> dict[str, Any]:
        """Output key -> tensor."""
        return dict(self._outputs)

    def as_signature_def(self, receiver_tensors: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        return tf.compat.v1.saved_model.predict_signature_def(dict(receiver_tensors), self.outputs)


class ClassificationOutput(ExportOutput):
    """Class scores and/or class names, as TF Serving's Classify API returns them.

    `scores` is a float tensor, `classes` a string tensor (class names, not ids); with both,
    each score belongs to the class at the same position.
    """

    def __init__(self, scores: Any = None, classes: Any = None) -> None:
        import tensorflow as tf

        if scores is None and classes is None:
            raise DefinitionError("ClassificationOutput needs scores, classes, or both")
        if scores is not None and not (_is_tensor(scores) and scores.dtype.is_floating):
            raise DefinitionError(
                f"ClassificationOutput scores must be a float tensor, got {scores!r}"
            )
        if classes is not None and not (_is_tensor(classes) and classes.dtype == tf.string):
            raise DefinitionError(
                f"ClassificationOutput classes must be a string tensor, got {classes!r}"
            )
        self._scores = scores
        self._classes = classes

    @property
    def scores(self) -> Any:
        return self._scores

    @property
    def classes(self) -> Any:
        return self._classes

    def as_signature_def(self, receiver_tensors: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        examples = _serialized_examples(receiver_tensors, "Classification")
        return tf.compat.v1.saved_model.classification_signature_def(
            examples, self._classes, self._scores
        )


class RegressionOutput(ExportOutput):
    """One float value per example, as TF Serving's Regress API returns it."""

    def __init__(self, value: Any) -> None:
        if not (_is_tensor(value) and value.dtype.is_floating):
            raise DefinitionError(f"RegressionOutput value must be a float tensor, got {value!r}")
        self._value = value

    @property
    def value(self) -> Any:
        return self._value

    def as_signature_def(self, receiver_tensors: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        examples = _serialized_examples(receiver_tensors, "Regression")
        return tf.compat.v1.saved_model.regression_signature_def(examples, self._value)


class SupervisedOutput(ExportOutput):
    """The signature of a `train` or `eval` MetaGraphDef: loss, predictions and metrics.

    Keys are prefixed `loss`, `predictions/`, `metrics/<name>/value` and
    `metrics/<name>/update_op`, except keys that already start with the prefix word: the
    Estimator's rule, so `predictions_x` stays `predictions_x` and clients of its exports
    find the keys they know. An update op that is an Operation is returned as an empty
    tensor that runs it, since signatures hold tensors only.
    """

    def __init__(
        self,
        method_name: str,
        *,
        loss: Any,
        predictions: Any,
        metrics: Mapping[str, tuple[Any, Any]],
    ) -> None:
        self.method_name = method_name
        self.outputs: dict[str, Any] = {
            **_prefixed(_named_tensors(loss, "loss", "loss"), "loss"),
            **_prefixed(_named_tensors(predictions, "predictions", "predictions"), "predictions"),
        }
        for name, (value, update_op) in metrics.items():
            key = _prefix_key(str(name), "metrics")
            self.outputs[f"{key}{_SEPARATOR}value"] = value
            self.outputs[f"{key}{_SEPARATOR}update_op"] = _as_tensor(update_op)

    def as_signature_def(self, receiver_tensors: Mapping[str, Any]) -> Any:
        import tensorflow as tf

        if not receiver_tensors:
            raise ValueError(f"a {self.method_name} signature needs inputs; the receiver has none")
        build = tf.compat.v1.saved_model.build_tensor_info
        return tf.compat.v1.saved_model.build_signature_def(
            {key: build(tensor) for key, tensor in receiver_tensors.items()},
            {key: build(tensor) for key, tensor in self.outputs.items()},
            self.method_name,
        )


def _is_tensor(value: object) -> bool:
    import tensorflow as tf

    return isinstance(value, tf.Tensor)


def _named_tensors(outputs: Any, single_name: str, what: str) -> dict[str, Any]:
    """A dict of tensors by string key (tuple keys joined with '/'); a single tensor is
    named `single_name`; None is no tensors."""
    if outputs is None:
        return {}
    if not isinstance(outputs, Mapping):
        outputs = {single_name: outputs}
    named = {}
    for key, value in outputs.items():
        name = _SEPARATOR.join(key) if isinstance(key, tuple) else key
        if not isinstance(name, str):
            raise DefinitionError(f"{what} output key {key!r} must be a string")
        if not _is_tensor(value):
            raise DefinitionError(f"{what} output {name!r} must be a tensor, got {value!r}")
        named[name] = value
    return named


def _prefix_key(key: str, prefix: str) -> str:
    return key if key.startswith(prefix) else f"{prefix}{_SEPARATOR}{key}"


def _prefixed(outputs: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {_prefix_key(key, prefix): value for key, value in outputs.items()}


def _as_tensor(update_op: Any) -> Any:
    """The update op as a tensor: an Operation becomes an empty constant depending on it."""
    import tensorflow as tf

    if _is_tensor(update_op):
        return update_op
    with tf.control_dependencies([update_op]):
        return tf.constant([], name="metric_op_wrapper")


def _serialized_examples(receiver_tensors: Mapping[str, Any], kind: str) -> Any:
    """The one string tensor a classify or regress signature takes; ValueError otherwise."""
    import tensorflow as tf

    tensors = list(receiver_tensors.values())
    if len(tensors) != 1 or not _is_tensor(tensors[0]) or tensors[0].dtype != tf.string:
        described = {key: _describe(tensor) for key, tensor in receiver_tensors.items()}
        raise ValueError(
            f"{kind} signatures take one string tensor of serialized tf.Example protos; "
            f"the receiver gives {described}: use a parsing serving receiver "
            "(build_parsing_serving_input_receiver_fn) or a PredictOutput"
        )
    return tensors[0]


def _describe(tensor: Any) -> str:
    import tensorflow as tf

    if isinstance(tensor, tf.sparse.SparseTensor):
        kind = "SparseTensor"
    elif isinstance(tensor, tf.RaggedTensor):
        kind = "RaggedTensor"
    else:
        kind = "Tensor"
    return f"{kind}({tensor.dtype.name})"
