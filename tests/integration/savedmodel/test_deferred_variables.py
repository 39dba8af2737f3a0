"""Models built with their initializers deferred, for the checkpoint to fill.

These tests pin the Keras and TensorFlow internals deferred_variables.py relies on: if an
upgrade changes them, they fail here rather than as wrong values in an export.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from savedmodel_support import TrainedExample, model_probabilities, serialized_examples

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel import write_saved_model
from airflow_tf_export.savedmodel.deferred_variables import build_deferred

_KERAS_PENDING = "uninitialized_variables"


def test_a_deferred_build_leaves_every_variable_without_a_value() -> None:
    built = build_deferred(example.build_model)

    assert built.built.built
    weights = built.built.weights
    assert len(weights) == 4
    assert {id(entry.keras_variable) for entry in built.deferred} == {id(w) for w in weights}
    assert not any(w.value.is_initialized() for w in weights)
    # Named as a normal build names them, which v1 sessions look them up by.
    assert sorted(w.value.name for w in weights) == sorted(
        w.value.name for w in example.build_model().weights
    )


def test_keras_own_pending_variables_are_left_as_they_were() -> None:
    import keras
    from keras.src.backend.common import global_state

    with keras.StatelessScope(initialize_variables=False):
        outside = keras.Variable(initializer="ones", shape=(2,), name="outside")
    try:
        build_deferred(example.build_model)
        assert global_state.get_global_attribute(_KERAS_PENDING) == [outside]
    finally:
        global_state.set_global_attribute(_KERAS_PENDING, [])


def test_unrestored_variables_get_their_initializer_values() -> None:
    import keras

    def build() -> Any:
        layer = keras.layers.Dense(
            2, kernel_initializer="ones", bias_initializer=keras.initializers.Constant(3.0)
        )
        layer.build((None, 2))
        return layer

    built = build_deferred(build)
    built.built.kernel.assign(np.full((2, 2), 7.0, np.float32))
    built.initialize_unrestored()

    np.testing.assert_array_equal(built.built.kernel.numpy(), np.full((2, 2), 7.0))
    np.testing.assert_array_equal(built.built.bias.numpy(), np.full((2,), 3.0))


def test_a_build_that_cannot_be_deferred_runs_again_as_usual() -> None:
    import keras

    calls = []

    def build_compiled() -> Any:
        calls.append(1)
        model = example.build_model()
        # The optimizer's iteration count is a variable created from the value 0.
        model.compile(optimizer=keras.optimizers.SGD(), loss="mse")
        return model

    built = build_deferred(build_compiled)

    assert len(calls) == 2
    assert built.deferred == ()
    assert all(w.value.is_initialized() for w in built.built.weights)


def test_a_user_error_in_the_build_is_raised() -> None:
    def broken() -> Any:
        raise ValueError("vocabulary file missing")

    with pytest.raises(ValueError, match="vocabulary file missing"):
        build_deferred(broken)


def test_a_subclassed_model_built_by_calling_it_exports_its_checkpoint(
    tmp_path: Path,
) -> None:
    """Calling the model inside build_model reads the variables before the checkpoint fills them."""
    import keras
    import tensorflow as tf

    class Scorer(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="scorer")
            self.hidden = keras.layers.Dense(4, activation="relu")
            self.norm = keras.layers.BatchNormalization()
            self.out = keras.layers.Dense(1)

        def call(self, features: dict[str, Any], training: bool = False) -> Any:
            return self.out(self.norm(self.hidden(features["x"]), training=training))

    def build() -> Any:
        model = Scorer()
        model({"x": tf.zeros((1, 3))})
        return model

    trained = build()
    for variable in trained.weights:
        variable.assign(tf.random.normal(variable.shape, seed=1) + 1.0)
    path = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=trained, step=tf.Variable(5, dtype=tf.int64)),
        str(tmp_path / "model_dir"),
        max_to_keep=None,
    ).save(5)
    from airflow_tf_export.savedmodel import Feature, ModelDefinition, RawServingInput

    definition = ModelDefinition(
        build_model=build, serving_input=RawServingInput({"x": Feature("float32", (3,))})
    )
    write_saved_model(definition, path, tmp_path / "export")

    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"](
        x=tf.constant(x)
    )["output"]
    np.testing.assert_allclose(served, trained({"x": x}), atol=1e-6)


def test_a_build_model_that_compiles_exports_through_the_usual_build(
    trained_example: TrainedExample, tmp_path: Path
) -> None:
    import keras
    import tensorflow as tf

    def build_compiled() -> Any:
        model = example.build_model()
        model.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy")
        return model

    fitted = example.build_model()
    model_dir = tmp_path / "compiled"
    fitted.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy")
    features, labels = example.make_dataset(32, seed=0)
    batches = tf.data.Dataset.from_tensor_slices((features, labels.astype("float32")))
    fitted.fit(batches.batch(16), epochs=1, verbose=0)
    path = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=fitted, step=tf.Variable(2, dtype=tf.int64)),
        str(model_dir),
        max_to_keep=None,
    ).save(2)
    definition = dataclasses.replace(example.definition, build_model=build_compiled)
    write_saved_model(definition, path, tmp_path / "export")

    loaded = tf.saved_model.load(str(tmp_path / "export"))
    examples = tf.constant(serialized_examples(trained_example.features))
    served = loaded.signatures["predict"](examples=examples)["logistic"]
    np.testing.assert_allclose(
        served, model_probabilities(fitted, trained_example.features), atol=1e-6
    )
