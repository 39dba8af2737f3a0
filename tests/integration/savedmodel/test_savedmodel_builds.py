"""build_model functions written the many ways Keras and TensorFlow allow: subclassed models
built by calling them, tf.Modules with a traced tf.function, layers in tf.name_scopes, cached
and compiled models, a cleared Keras session. Each export serves the trained values, and the
restored variables keep the names a plain build gives them (v1 sessions look them up by name).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from savedmodel_support import (
    TrainedExample,
    compiling_example_model,
    exported_optimizer_state,
    model_checkpoint,
    model_probabilities,
    serialized_examples,
)

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel import write_saved_model
from airflow_tf_export.savedmodel.restore import _python_variables, restore_model


def _scorer_layers() -> tuple[Any, Any]:
    import keras

    return keras.layers.Dense(4, activation="relu", name="hidden"), keras.layers.Dense(
        1, name="out"
    )


def _subclassed_called() -> Any:
    """A subclassed model built by calling it on data: it reads its variables."""
    import keras
    import tensorflow as tf

    class Scorer(keras.Model):
        def __init__(self) -> None:
            super().__init__(name="scorer")
            self.hidden, self.out = _scorer_layers()
            self.norm = keras.layers.BatchNormalization()

        def call(self, features: dict[str, Any], training: bool = False) -> Any:
            return self.out(self.norm(self.hidden(features["x"]), training=training))

    model = Scorer()
    model({"x": tf.zeros((1, 3))})
    return model


def _module_with_tf_function() -> Any:
    """A tf.Module whose tf.function __call__ is traced (and run) once to create variables."""
    import tensorflow as tf

    class Scorer(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hidden, self.out = _scorer_layers()

        @tf.function(input_signature=[{"x": tf.TensorSpec([None, 3], tf.float32)}])
        def __call__(self, features: dict[str, Any]) -> Any:
            return self.out(self.hidden(features["x"]))

    module = Scorer()
    module({"x": tf.zeros((1, 3))})
    return module


def _towers_in_name_scopes() -> Any:
    """A tf.Module building two same-named layers from shapes inside tf.name_scopes."""
    import keras
    import tensorflow as tf

    class Towers(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.towers = []
            for scope in ("tower_a", "tower_b"):
                with tf.name_scope(scope):
                    layer = keras.layers.Dense(1, name="proj")
                    layer.build((None, 3))
                self.towers.append(layer)

        def __call__(self, features: dict[str, Any]) -> Any:
            return self.towers[0](features["x"]) + self.towers[1](features["x"])

    return Towers()


_CACHED: list[Any] = []


def _cached_and_compiled() -> Any:
    """A cached functional model, compiled on every call."""
    import keras

    if not _CACHED:
        inputs = keras.Input(shape=(3,), name="x")
        hidden, out = _scorer_layers()
        _CACHED.append(keras.Model({"x": inputs}, out(hidden(inputs))))
    _CACHED[0].compile(optimizer=keras.optimizers.SGD(name="sgd"), loss="mse")
    return _CACHED[0]


def _clears_the_session() -> Any:
    import keras

    keras.backend.clear_session()
    inputs = keras.Input(shape=(3,), name="x")
    hidden, out = _scorer_layers()
    return keras.Model({"x": inputs}, out(hidden(inputs)))


def _variables(model: Any) -> list[Any]:
    """The model's variables; not those of the optimizer a compiled model carries, which the
    export drops (the train signature steps make_optimizer()'s)."""
    return [variable for path, variable in _python_variables(model) if path[0] != "optimizer"]


def _tensorflow_name(variable: Any) -> str:
    """The name of the TensorFlow variable (a Keras variable wraps one), without ":0"."""
    import keras

    if isinstance(variable, keras.Variable):
        variable = variable.value
    return str(variable.name).removesuffix(":0")


@pytest.mark.parametrize(
    "build",
    [
        _subclassed_called,
        _module_with_tf_function,
        _towers_in_name_scopes,
        _cached_and_compiled,
        _clears_the_session,
    ],
)
def test_each_way_of_building_exports_the_checkpoint_under_the_usual_names(
    build: Any, tmp_path: Path
) -> None:
    """Each export serves the trained values, and the restored variables have the names a
    usual build gives (v1 sessions look variables up by them)."""
    import tensorflow as tf

    from airflow_tf_export.savedmodel import Feature, ModelDefinition, RawServingInput

    _CACHED.clear()
    trained = build()
    for index, variable in enumerate(_variables(trained)):
        variable.assign(tf.random.stateless_normal(variable.shape, seed=[1, index]) + 1.0)
    path = model_checkpoint(trained, tmp_path / "model_dir", 5)
    _CACHED.clear()
    usual_names = sorted(_tensorflow_name(v) for v in _variables(build()))
    _CACHED.clear()
    definition = ModelDefinition(
        build_model=build, serving_input=RawServingInput({"x": Feature("float32", (3,))})
    )
    restored = restore_model(definition, path, with_optimizer=False).model
    assert sorted(_tensorflow_name(v) for v in _variables(restored)) == usual_names
    _CACHED.clear()
    write_saved_model(definition, path, tmp_path / "export")

    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"](
        x=tf.constant(x)
    )["output"]
    expected = trained({"x": tf.constant(x)})
    np.testing.assert_allclose(served, expected, atol=1e-6)


def test_a_build_model_that_compiles_exports_the_fitted_model(
    trained_example: TrainedExample, tmp_path: Path
) -> None:
    """Checkpointed with its compiled optimizer also as the checkpoint's `optimizer`: the
    train signature continues that optimizer's state."""
    import tensorflow as tf

    fitted = compiling_example_model()
    features, labels = example.make_dataset(32, seed=0)
    batches = tf.data.Dataset.from_tensor_slices((features, labels.astype("float32")))
    fitted.fit(batches.batch(16), epochs=1, verbose=0)
    checkpoint = tf.train.Checkpoint(
        model=fitted, optimizer=fitted.optimizer, step=tf.Variable(2, dtype=tf.int64)
    )
    path = tf.train.CheckpointManager(checkpoint, str(tmp_path / "compiled"), None).save(2)
    definition = dataclasses.replace(example.definition, build_model=compiling_example_model)
    write_saved_model(definition, path, tmp_path / "export", modes=("train", "serve"))

    loaded = tf.saved_model.load(str(tmp_path / "export"), tags=["serve"])
    examples = tf.constant(serialized_examples(trained_example.features))
    served = loaded.signatures["predict"](examples=examples)["logistic"]
    np.testing.assert_allclose(
        served, model_probabilities(fitted, trained_example.features), atol=1e-6
    )
    exported = exported_optimizer_state(tmp_path / "export")
    assert exported["iteration"] == fitted.optimizer.iterations.numpy() == 2


def test_a_build_model_that_compiles_exports_checkpoints_of_a_custom_training_loop(
    trained_example: TrainedExample, tmp_path: Path
) -> None:
    """The checkpoint holds no state of the compiled model's optimizer: the export does not
    use that optimizer (the train signature steps make_optimizer()'s), so none is needed."""
    import tensorflow as tf

    definition = dataclasses.replace(example.definition, build_model=compiling_example_model)
    write_saved_model(
        definition, trained_example.latest, tmp_path / "export", modes=("train", "eval", "serve")
    )

    restored = restore_model(example.definition, trained_example.latest, with_optimizer=False)
    loaded = tf.saved_model.load(str(tmp_path / "export"), tags=["serve"])
    examples = tf.constant(serialized_examples(trained_example.features))
    served = loaded.signatures["predict"](examples=examples)["logistic"]
    np.testing.assert_allclose(
        served, model_probabilities(restored.model, trained_example.features), atol=1e-6
    )
    saved_iterations = tf.train.load_checkpoint(trained_example.latest).get_tensor(
        "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
    )
    assert exported_optimizer_state(tmp_path / "export")["iteration"] == saved_iterations > 0


def test_a_kept_compiled_model_has_its_optimizer_after_the_export(
    trained_example: TrainedExample, tmp_path: Path
) -> None:
    """build_model may return a model the user keeps: the export sets its compiled optimizer
    aside only while restoring, and the model still trains afterwards."""
    import tensorflow as tf

    kept = compiling_example_model()
    compiled_optimizer = kept.optimizer
    definition = dataclasses.replace(example.definition, build_model=lambda: kept)

    write_saved_model(definition, trained_example.latest, tmp_path / "export")

    assert kept.optimizer is compiled_optimizer
    features, labels = example.make_dataset(32, seed=2)
    batches = tf.data.Dataset.from_tensor_slices((features, labels.astype("float32")))
    kept.fit(batches.batch(16), epochs=1, verbose=0)
    assert int(compiled_optimizer.iterations.numpy()) == 2


def test_a_kept_uncompiled_model_gets_no_optimizer_from_the_export(
    trained_example: TrainedExample, tmp_path: Path
) -> None:
    """Reading a compiled model's checkpoint attaches make_optimizer()'s optimizer to the model
    during the restore; a model the user keeps does not keep it."""
    import tensorflow as tf

    fitted = compiling_example_model()
    features, labels = example.make_dataset(32, seed=0)
    batches = tf.data.Dataset.from_tensor_slices((features, labels.astype("float32")))
    fitted.fit(batches.batch(16), epochs=1, verbose=0)
    path = model_checkpoint(fitted, tmp_path / "compiled", 2)
    kept = example.build_model()
    definition = dataclasses.replace(example.definition, build_model=lambda: kept)

    write_saved_model(definition, path, tmp_path / "export", modes=("train", "serve"))

    assert exported_optimizer_state(tmp_path / "export")["iteration"] == 2
    assert getattr(kept, "optimizer", None) is None
    assert "optimizer" not in dict(tf.train.TrackableView(kept).children(kept))
