"""The concrete functions behind each signature of each mode.

serve  one function per export output: receiver -> inference -> chosen predictions.
train  features + label -> loss; applies one optimizer step and increments `global_step`.
eval   features + label -> `loss`, `predictions/<key>`, `metrics/<name>/value` (one batch).

The inference pass (the model with training=False, then `predictions`) is traced once per
feature set and called by the serving and eval signatures, so the model graph is built and
saved once for both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_tf_export.savedmodel.definition import ModelDefinition
from airflow_tf_export.savedmodel.errors import DefinitionError
from airflow_tf_export.savedmodel.export_outputs import (
    ClassificationOutput,
    ExportOutput,
    RegressionOutput,
    serving_signatures,
    takes_serialized_examples,
)
from airflow_tf_export.savedmodel.modes import (
    EVAL,
    EVAL_METHOD_NAME,
    SERVE,
    TRAIN,
    TRAIN_METHOD_NAME,
)
from airflow_tf_export.savedmodel.receivers import (
    Feature,
    ParsingServingInput,
    SupervisedInput,
    label_spec,
    parse_examples,
    tensor_specs,
)
from airflow_tf_export.savedmodel.restore import RestoredModel, is_keras_model

# Classify signatures carry one input of serialized tf.Example strings under this key.
EXAMPLES_INPUT_KEY = "inputs"


@dataclass(frozen=True)
class Signature:
    """One signature: its traced function and its SignatureDef method name."""

    function: Any
    method_name: str


def build_signatures(
    definition: ModelDefinition, restored: RestoredModel, modes: tuple[str, ...]
) -> dict[str, dict[str, Signature]]:
    """mode -> signature key -> traced signature, for each requested mode."""
    inference = _Inference(definition, restored.model)
    built: dict[str, dict[str, Signature]] = {}
    if TRAIN in modes:
        built[TRAIN] = {TRAIN: Signature(_train_function(definition, restored), TRAIN_METHOD_NAME)}
    if EVAL in modes:
        built[EVAL] = {EVAL: Signature(_eval_function(definition, inference), EVAL_METHOD_NAME)}
    if SERVE in modes:
        built[SERVE] = _serving_functions(definition, inference)
    return built


def _call_model(model: Any, features: Mapping[str, Any], *, training: bool) -> Any:
    if is_keras_model(model):
        return model(features, training=training)
    return model(features)


def _predictions(definition: ModelDefinition, outputs: Any) -> dict[str, Any]:
    if definition.predictions is not None:
        predictions = definition.predictions(outputs)
        if not isinstance(predictions, Mapping):
            raise TypeError(
                f"predictions must return a dict of tensors, got {type(predictions).__name__}"
            )
        return dict(predictions)
    if isinstance(outputs, Mapping):
        return dict(outputs)
    return {"output": outputs}


class _Inference:
    """features -> {"outputs": model outputs, "predictions": named predictions}, traced
    once per feature set."""

    def __init__(self, definition: ModelDefinition, model: Any) -> None:
        self._definition = definition
        self._model = model
        self._traced: dict[tuple[tuple[str, Feature], ...], Any] = {}

    def function(self, features: Mapping[str, Feature]) -> Any:
        import tensorflow as tf

        key = tuple(sorted(features.items()))
        if key not in self._traced:

            def infer(received: Mapping[str, Any]) -> dict[str, Any]:
                outputs = _call_model(self._model, received, training=False)
                return {"outputs": outputs, "predictions": _predictions(self._definition, outputs)}

            traced = tf.function(infer, input_signature=[tensor_specs(features)])
            self._traced[key] = traced.get_concrete_function()
        return self._traced[key]


def _chosen_outputs(key: str, output: ExportOutput, available: Mapping[str, Any]) -> dict[str, str]:
    """Signature output key -> prediction key, checked against the traced predictions."""
    import tensorflow as tf

    chosen = output.output_keys(tuple(available))
    for prediction_key in chosen.values():
        if prediction_key not in available:
            raise DefinitionError(
                f"export output {key!r} names prediction {prediction_key!r}, but the "
                f"predictions are {sorted(available)}"
            )
    required = {}
    if isinstance(output, ClassificationOutput):
        required = {"classes": tf.string, "scores": tf.float32}
    elif isinstance(output, RegressionOutput):
        required = {"outputs": tf.float32}
    for output_key, dtype in required.items():
        if output_key in chosen and available[chosen[output_key]].dtype != dtype:
            raise DefinitionError(
                f"export output {key!r}: {output_key} must be {dtype.name}, but prediction "
                f"{chosen[output_key]!r} is {available[chosen[output_key]].dtype.name}"
            )
    return chosen


def _serving_functions(definition: ModelDefinition, inference: _Inference) -> dict[str, Signature]:
    """One thin signature per export output over the shared inference pass."""
    import tensorflow as tf

    serving_input = definition.serving_input
    infer = inference.function(serving_input.features)
    available = infer.structured_outputs["predictions"]
    traced: dict[int, Any] = {}
    signatures = {}
    for key, output in serving_signatures(definition.export_outputs).items():
        if id(output) not in traced:
            chosen = _chosen_outputs(key, output, available)

            def serve(received: Any, chosen: dict[str, str] = chosen) -> dict[str, Any]:
                if isinstance(serving_input, ParsingServingInput):
                    received = parse_examples(received, serving_input.features)
                predictions = infer(received)["predictions"]
                return {name: predictions[prediction] for name, prediction in chosen.items()}

            if isinstance(serving_input, ParsingServingInput):
                name = (
                    EXAMPLES_INPUT_KEY
                    if takes_serialized_examples(output)
                    else serving_input.input_name
                )
                receiver = [tf.TensorSpec([None], tf.string, name)]
            else:
                receiver = [tensor_specs(serving_input.features)]
            function = tf.function(serve, input_signature=receiver)
            traced[id(output)] = function.get_concrete_function()
        signatures[key] = Signature(traced[id(output)], output.method_name)
    return signatures


def _supervised(definition: ModelDefinition) -> tuple[SupervisedInput, Callable[[Any, Any], Any]]:
    if definition.supervised_input is None or definition.loss is None:
        raise DefinitionError("the train and eval modes need supervised_input and loss")
    return definition.supervised_input, definition.loss


def _train_function(definition: ModelDefinition, restored: RestoredModel) -> Any:
    import tensorflow as tf

    supervised, loss_fn = _supervised(definition)
    model, optimizer, global_step = restored.model, restored.optimizer, restored.step_variable
    if optimizer is None or global_step is None:
        raise DefinitionError("the train mode needs a model restored with its optimizer")

    def train(features: Mapping[str, Any], labels: Any) -> dict[str, Any]:
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, _call_model(model, features, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        global_step.assign_add(1)
        return {"loss": loss}

    signature = [tensor_specs(supervised.features), label_spec(supervised)]
    return tf.function(train, input_signature=signature).get_concrete_function()


def _eval_function(definition: ModelDefinition, inference: _Inference) -> Any:
    import tensorflow as tf

    supervised, loss_fn = _supervised(definition)
    infer = inference.function(supervised.features)

    def evaluate(features: Mapping[str, Any], labels: Any) -> dict[str, Any]:
        inferred = infer(features)
        outputs = inferred["outputs"]
        result = {"loss": loss_fn(labels, outputs)}
        for key, value in inferred["predictions"].items():
            result[f"predictions/{key}"] = value
        for name, metric in definition.metrics.items():
            result[f"metrics/{name}/value"] = metric(labels, outputs)
        return result

    signature = [tensor_specs(supervised.features), label_spec(supervised)]
    return tf.function(evaluate, input_signature=signature).get_concrete_function()
