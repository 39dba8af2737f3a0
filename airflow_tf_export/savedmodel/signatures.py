"""The concrete functions behind each signature of each mode.

serve  one function per export output: receiver -> inference -> chosen predictions.
train  features + label -> loss; applies one optimizer step and increments `global_step`.
eval   features + label -> `loss`, `predictions/<key>`, `metrics/<name>/value` (one batch).

The inference pass (the model with training=False, then `predictions`) is traced once per
feature set when several signatures use it (eval and serve, or several export outputs), so
the model graph is built and saved once for all of them. A pass that only one signature uses
is inlined into it: a nested function would only add a trace and a saved function.
"""

from __future__ import annotations

from collections import Counter
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
    ServingInput,
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
    definition: ModelDefinition,
    restored: RestoredModel,
    modes: tuple[str, ...],
    traced: list[Any],
) -> dict[str, dict[str, Signature]]:
    """mode -> signature key -> traced signature, for each requested mode.

    Every concrete function traced (signatures and the shared inference pass) is appended to
    `traced` as soon as it exists, so the caller can release what tracing registered even
    when a later trace fails.
    """
    inference = _Inference(definition, restored.model, _inference_users(definition, modes), traced)
    built: dict[str, dict[str, Signature]] = {}
    if TRAIN in modes:
        train = _train_function(definition, restored, traced)
        built[TRAIN] = {TRAIN: Signature(train, TRAIN_METHOD_NAME)}
    if EVAL in modes:
        evaluate = _eval_function(definition, inference, traced)
        built[EVAL] = {EVAL: Signature(evaluate, EVAL_METHOD_NAME)}
    if SERVE in modes:
        built[SERVE] = _serving_functions(definition, inference, traced)
    return built


def _trace(function: Callable[..., Any], input_signature: list[Any], traced: list[Any]) -> Any:
    """`function` traced as a concrete function, which is also appended to `traced`."""
    import tensorflow as tf

    concrete = tf.function(function, input_signature=input_signature).get_concrete_function()
    traced.append(concrete)
    return concrete


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


FeatureSet = tuple[tuple[str, Feature], ...]


def _feature_set(features: Mapping[str, Feature]) -> FeatureSet:
    return tuple(sorted(features.items()))


def _inference_users(definition: ModelDefinition, modes: tuple[str, ...]) -> Counter[FeatureSet]:
    """How many signatures run the inference pass, per feature set."""
    users: Counter[FeatureSet] = Counter()
    if EVAL in modes and definition.supervised_input is not None:
        users[_feature_set(definition.supervised_input.features)] += 1
    if SERVE in modes:
        outputs = serving_signatures(definition.export_outputs).values()
        users[_feature_set(definition.serving_input.features)] += len({id(o) for o in outputs})
    return users


class _Inference:
    """features -> {"outputs": model outputs, "predictions": named predictions}.

    A traced function, once per feature set, where several signatures share the pass;
    otherwise the plain Python function, traced inline by its one signature.
    """

    def __init__(
        self,
        definition: ModelDefinition,
        model: Any,
        users: Counter[FeatureSet],
        traced: list[Any],
    ) -> None:
        self._definition = definition
        self._model = model
        self._users = users
        self._traced = traced
        self._functions: dict[FeatureSet, Callable[[Mapping[str, Any]], dict[str, Any]]] = {}

    def function(
        self, features: Mapping[str, Feature]
    ) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
        key = _feature_set(features)
        if key not in self._functions:

            def infer(received: Mapping[str, Any]) -> dict[str, Any]:
                outputs = _call_model(self._model, received, training=False)
                return {"outputs": outputs, "predictions": _predictions(self._definition, outputs)}

            if self._users[key] > 1:
                self._functions[key] = _trace(infer, [tensor_specs(features)], self._traced)
            else:
                self._functions[key] = infer
        return self._functions[key]


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


def _serving_functions(
    definition: ModelDefinition, inference: _Inference, traced: list[Any]
) -> dict[str, Signature]:
    """One thin signature per export output over the inference pass."""
    infer = inference.function(definition.serving_input.features)
    by_output: dict[int, Any] = {}
    signatures = {}
    for key, output in serving_signatures(definition.export_outputs).items():
        if id(output) not in by_output:
            by_output[id(output)] = _serving_function(
                definition.serving_input, infer, key, output, traced
            )
        signatures[key] = Signature(by_output[id(output)], output.method_name)
    return signatures


def _serving_function(
    serving_input: ServingInput,
    infer: Callable[[Mapping[str, Any]], dict[str, Any]],
    key: str,
    output: ExportOutput,
    traced: list[Any],
) -> Any:
    """The traced signature of one export output: receiver -> chosen predictions."""
    import tensorflow as tf

    # The export output is checked against the predictions while tracing; raised there,
    # autograph would turn the DefinitionError into a StagingError.
    problems: list[DefinitionError] = []

    def serve(received: Any) -> dict[str, Any]:
        if isinstance(serving_input, ParsingServingInput):
            received = parse_examples(received, serving_input.features)
        predictions = infer(received)["predictions"]
        try:
            chosen = _chosen_outputs(key, output, predictions)
        except DefinitionError as problem:
            problems.append(problem)
            return {}
        return {name: predictions[prediction] for name, prediction in chosen.items()}

    if isinstance(serving_input, ParsingServingInput):
        name = EXAMPLES_INPUT_KEY if takes_serialized_examples(output) else serving_input.input_name
        receiver = [tf.TensorSpec([None], tf.string, name)]
    else:
        receiver = [tensor_specs(serving_input.features)]
    function = _trace(serve, receiver, traced)
    if problems:
        raise problems[0]
    return function


def _supervised(definition: ModelDefinition) -> tuple[SupervisedInput, Callable[[Any, Any], Any]]:
    if definition.supervised_input is None or definition.loss is None:
        raise DefinitionError("the train and eval modes need supervised_input and loss")
    return definition.supervised_input, definition.loss


def _train_function(definition: ModelDefinition, restored: RestoredModel, traced: list[Any]) -> Any:
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
    return _trace(train, signature, traced)


def _eval_function(definition: ModelDefinition, inference: _Inference, traced: list[Any]) -> Any:
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
    return _trace(evaluate, signature, traced)
