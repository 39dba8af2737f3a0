"""Types and helpers shared by the SavedModel integration tests (imported by conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from airflow_tf_export.savedmodel import (
    Feature,
    ModelDefinition,
    RawServingInput,
    SupervisedInput,
)
from airflow_tf_export.storage.base import WrittenModel

STEPS_PER_CHECKPOINT = 10


@dataclass(frozen=True)
class TrainedExample:
    """A model dir with checkpoints ckpt-10 and ckpt-20, and a fixed evaluation batch."""

    model_dir: Path
    checkpoints: tuple[str, ...]
    features: dict[str, np.ndarray]
    labels: np.ndarray

    @property
    def latest(self) -> str:
        return self.checkpoints[-1]


@dataclass(frozen=True)
class Export:
    path: Path
    written: WrittenModel


def serialized_examples(features: dict[str, np.ndarray]) -> list[bytes]:
    """The features as serialized tf.Example protos, one per row."""
    import tensorflow as tf

    rows = []
    for age, language in zip(features["age"], features["language"], strict=True):
        feature = {
            "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(age)])),
            "language": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(language)])),
        }
        rows.append(
            tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
        )
    return rows


def model_probabilities(model: Any, features: dict[str, np.ndarray]) -> np.ndarray:
    """The Keras model's probabilities of class 1, shape (batch,)."""
    import tensorflow as tf

    inputs = {name: tf.constant(values) for name, values in features.items()}
    return np.asarray(model(inputs, training=False))[:, 0]


def model_checkpoint(model: Any, model_dir: Path, step: int) -> str:
    """`model` saved as tf.train.CheckpointManager saves `Checkpoint(model=, step=)`; the prefix."""
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(step, dtype=tf.int64))
    return str(tf.train.CheckpointManager(checkpoint, str(model_dir), max_to_keep=None).save(step))


def compiling_example_model() -> Any:
    """The example model compiled with an optimizer of its own, as Keras code often builds it."""
    import keras

    from airflow_tf_export.example import model as example

    model = example.build_model()
    model.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy")
    return model


def halving_gradient_model() -> Any:
    """x (3 floats) -> Dense -> a layer whose custom gradient halves the upstream -> Dense."""
    import keras
    import tensorflow as tf

    @tf.custom_gradient
    def halve_gradient(x: Any) -> Any:
        return tf.identity(x), lambda upstream: 0.5 * upstream

    class HalveGradient(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            return halve_gradient(x)

    inputs = keras.Input(shape=(3,), name="x")
    hidden = HalveGradient()(keras.layers.Dense(4, activation="relu")(inputs))
    return keras.Model({"x": inputs}, keras.layers.Dense(1)(hidden))


def single_input_definition(build_model: Callable[[], Any]) -> ModelDefinition:
    """A definition, for every mode, of a model with one input `x` of 3 floats and one output."""
    import keras

    features = {"x": Feature("float32", (3,))}
    return ModelDefinition(
        build_model=build_model,
        serving_input=RawServingInput(features),
        supervised_input=SupervisedInput(features, label=Feature("float32")),
        loss=lambda labels, outputs: keras.ops.mean(keras.ops.square(outputs[:, 0] - labels)),
        make_optimizer=lambda: keras.optimizers.SGD(0.1),
    )


# Keras 3 names an optimizer's step count, learning rate and Adam / momentum slots so.
OPTIMIZER_VARIABLES = ("/iteration", "/learning_rate", "_momentum", "_velocity")


def exported_optimizer_state(export: Path) -> dict[str, np.ndarray]:
    """The optimizer's variables in the exported train graph, read in a v1 session."""
    import tensorflow as tf

    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        tf.compat.v1.saved_model.loader.load(session, ["train"], str(export))
        handles = [
            op
            for op in session.graph.get_operations()
            if op.type == "VarHandleOp" and op.name.endswith(OPTIMIZER_VARIABLES)
        ]
        return {
            op.name.rsplit("/", 1)[-1]: session.run(
                tf.raw_ops.ReadVariableOp(resource=op.outputs[0], dtype=op.get_attr("dtype"))
            )
            for op in handles
        }
