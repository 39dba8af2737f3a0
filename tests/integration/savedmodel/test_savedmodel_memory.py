"""An export leaves nothing of the model it built alive in the process.

TensorFlow keeps the gradient function of every tf.custom_gradient traced into a graph in a
process-wide registry, and with it the graph and the variables it captured. A Keras
optimizer step traces one; so may the user's own layers. A process that exports many
checkpoints (a backfill in one task, a notebook) must not keep a copy of the model per export,
and must not lose the gradients of functions that outlive an export.
"""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from savedmodel_support import (
    TrainedExample,
    halving_gradient_model,
    model_checkpoint,
    single_input_definition,
)

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel import DefinitionError, PredictOutput, write_saved_model


def _watching(build_model: Callable[[], Any], handles: list[weakref.ref[Any]]) -> Callable[[], Any]:
    """build_model, recording a weak reference to each variable's resource handle it creates."""

    def build() -> Any:
        model = build_model()
        handles.extend(weakref.ref(variable.value.handle) for variable in model.weights)
        return model

    return build


def _registered_gradients() -> int:
    from tensorflow.python.framework import ops

    return len(ops.gradient_registry.list())


@pytest.mark.parametrize("modes", [("train", "eval", "serve"), ("train",), ("serve",)])
def test_export_frees_the_model_variables(
    trained_example: TrainedExample, tmp_path: Path, modes: tuple[str, ...]
) -> None:
    handles: list[weakref.ref[Any]] = []
    definition = dataclasses.replace(
        example.definition, build_model=_watching(example.build_model, handles)
    )
    registered = _registered_gradients()

    write_saved_model(definition, trained_example.latest, tmp_path / "export", modes=modes)
    gc.collect()

    assert handles
    assert [ref for ref in handles if ref() is not None] == []
    assert _registered_gradients() == registered


def test_export_of_a_model_with_its_own_custom_gradient_frees_it(tmp_path: Path) -> None:
    import tensorflow as tf

    handles: list[weakref.ref[Any]] = []
    definition = single_input_definition(_watching(halving_gradient_model, handles))
    before_build = _registered_gradients()
    trained = halving_gradient_model()
    # Keras traces the layer to infer shapes while building: that registration is the build's.
    by_build = _registered_gradients() - before_build
    checkpoint = model_checkpoint(trained, tmp_path / "model_dir", step=3)
    registered = _registered_gradients()

    write_saved_model(definition, checkpoint, tmp_path / "export", modes=("eval", "serve"))
    gc.collect()

    assert handles
    assert [ref for ref in handles if ref() is not None] == []
    assert _registered_gradients() == registered + by_build
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    loaded = tf.saved_model.load(str(tmp_path / "export"), tags=["serve"])
    served = loaded.signatures["serving_default"]
    np.testing.assert_allclose(
        served(x=tf.constant(x))["output"].numpy(), trained({"x": x}).numpy(), atol=1e-6
    )


def test_an_export_failing_after_some_traces_frees_the_model(
    trained_example: TrainedExample, tmp_path: Path
) -> None:
    """train and eval are traced before the serving output turns out to name no prediction."""
    handles: list[weakref.ref[Any]] = []
    definition = dataclasses.replace(
        example.definition,
        build_model=_watching(example.build_model, handles),
        export_outputs={"serving_default": PredictOutput(keys=("no_such_prediction",))},
    )
    registered = _registered_gradients()

    with pytest.raises(DefinitionError, match="no_such_prediction"):
        write_saved_model(
            definition,
            trained_example.latest,
            tmp_path / "export",
            modes=("train", "eval", "serve"),
        )
    gc.collect()

    assert handles
    assert [ref for ref in handles if ref() is not None] == []
    assert _registered_gradients() == registered
    assert not (tmp_path / "export").exists()


_SHARED_FUNCTION: list[Any] = []


def _halving_tf_function() -> Any:
    """A user's tf.function with a custom gradient: traced once, its trace reused by every
    later call in the process (the model's training, each export)."""
    import tensorflow as tf

    if not _SHARED_FUNCTION:

        @tf.custom_gradient
        def halve_gradient(x: Any) -> Any:
            return tf.identity(x), lambda upstream: 0.5 * upstream

        signature = [tf.TensorSpec([None, 4], tf.float32)]
        _SHARED_FUNCTION.append(tf.function(halve_gradient, input_signature=signature))
    return _SHARED_FUNCTION[0]


def _model_calling_a_tf_function() -> Any:
    import keras

    class HalveGradient(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return _halving_tf_function()(x)

    inputs = keras.Input(shape=(3,), name="x")
    hidden = HalveGradient()(keras.layers.Dense(4, activation="relu")(inputs))
    return keras.Model({"x": inputs}, keras.layers.Dense(1)(hidden))


def test_a_tf_function_the_model_calls_keeps_its_custom_gradient(tmp_path: Path) -> None:
    """The export leaves the registration of a trace it does not own: the user's model and
    each later export still differentiate through it."""
    import tensorflow as tf

    model = _model_calling_a_tf_function()
    checkpoint = model_checkpoint(model, tmp_path / "model_dir", step=1)
    definition = single_input_definition(_model_calling_a_tf_function)
    x = tf.constant([[1.0, -2.0, 3.0], [0.5, 0.5, 0.5]])

    for export in ("first", "second"):
        write_saved_model(definition, checkpoint, tmp_path / export)
        loaded = tf.saved_model.load(str(tmp_path / export))
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            exported = loaded.signatures["serving_default"](x=x)["output"]
            own = model({"x": x})
        np.testing.assert_allclose(tape.gradient(exported, x), tape.gradient(own, x), atol=1e-6)
