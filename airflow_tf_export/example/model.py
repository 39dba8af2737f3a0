"""The example model: a linear classifier over `age` (int64) and `language` (string).

The Keras 3 counterpart of the seed's `tf.estimator.LinearClassifier(feature_columns=[age,
language])`: one weight for the scaled age, one weight per vocabulary language plus one for
out-of-vocabulary languages, a bias, and a sigmoid. Its `definition` is what DAGs name as
"airflow_tf_export.example.model:definition". TensorFlow is imported inside functions only.

Checkpoint layout (what example training writes and `definition` restores):

    step = tf.Variable(0, dtype=tf.int64)          # the global step
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=None)
    manager.save(checkpoint_number=int(step))      # model_dir/ckpt-<step>.index/.data-*

with `model = build_model()` and `optimizer = make_optimizer()`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from airflow_tf_export.savedmodel.definition import (
    KerasWeights,
    ModelDefinition,
    TrackableCheckpoint,
)
from airflow_tf_export.savedmodel.export_outputs import ClassificationOutput, PredictOutput
from airflow_tf_export.savedmodel.receivers import (
    Feature,
    ParsingServingInput,
    SupervisedInput,
)

VOCABULARY = ("english", "french", "german", "spanish")
# Languages make_dataset draws that are not in VOCABULARY, to exercise the OOV weight.
OUT_OF_VOCABULARY = ("italian",)
FEATURES = {"age": Feature("int64"), "language": Feature("string")}
LABEL = Feature("int64")
CLASSES = ("0", "1")

# The synthetic truth make_dataset draws labels from: logit = AGE_SLOPE * (age - AGE_CENTER)
# + LANGUAGE_EFFECT[language].
AGE_SLOPE = 0.08
AGE_CENTER = 45
LANGUAGE_EFFECT = {"english": 0.5, "french": -1.0, "german": 1.0, "spanish": -0.5, "italian": 0.0}


def build_model() -> Any:
    """The linear classifier, a functional Keras model taking {"age", "language"}."""
    import keras

    age = keras.Input(shape=(), dtype="int64", name="age")
    language = keras.Input(shape=(), dtype="string", name="language")
    scaled_age = keras.layers.Reshape((1,))(keras.layers.Rescaling(0.01)(age))
    one_hot = keras.layers.StringLookup(
        vocabulary=list(VOCABULARY), output_mode="one_hot", name="language_lookup"
    )(language)
    logit = keras.layers.Add()(
        [
            keras.layers.Dense(1, use_bias=False, name="age_weights")(scaled_age),
            keras.layers.Dense(1, use_bias=False, name="language_weights")(one_hot),
        ]
    )
    probability = keras.layers.Dense(
        1, activation="sigmoid", kernel_initializer="ones", name="logistic"
    )(logit)
    return keras.Model({"age": age, "language": language}, probability, name="linear")


def make_optimizer() -> Any:
    """The optimizer training uses and the `train` signature steps."""
    import keras

    return keras.optimizers.Adam(learning_rate=0.05)


def loss(labels: Any, probabilities: Any) -> Any:
    """Mean binary cross-entropy of int64 labels (batch,) against probabilities (batch, 1)."""
    import keras

    targets = keras.ops.expand_dims(keras.ops.cast(labels, "float32"), -1)
    return keras.ops.mean(keras.losses.binary_crossentropy(targets, probabilities))


def accuracy(labels: Any, probabilities: Any) -> Any:
    """Fraction of the batch whose thresholded probability equals the label."""
    import keras

    predicted = keras.ops.cast(probabilities[:, 0] > 0.5, "int64")
    return keras.ops.mean(keras.ops.cast(keras.ops.equal(predicted, labels), "float32"))


def predictions(probabilities: Any) -> dict[str, Any]:
    """Named predictions, as a binary Estimator head returned them."""
    import tensorflow as tf

    logistic = probabilities[:, 0]
    class_ids = tf.cast(logistic > 0.5, tf.int64)
    return {
        "logistic": logistic,
        "probabilities": tf.stack([1.0 - logistic, logistic], axis=1),
        "class_ids": class_ids,
        "classes": tf.gather(tf.constant(CLASSES), class_ids),
        "all_classes": tf.tile(tf.constant([CLASSES]), [tf.shape(logistic)[0], 1]),
    }


def make_dataset(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`n` synthetic examples: features {"age": int64, "language": bytes} and int64 labels."""
    rng = np.random.default_rng(seed)
    languages = np.array(VOCABULARY + OUT_OF_VOCABULARY)
    age = rng.integers(18, 80, size=n).astype(np.int64)
    language = languages[rng.integers(0, len(languages), size=n)]
    effect = np.array([LANGUAGE_EFFECT[name] for name in language])
    logit = AGE_SLOPE * (age - AGE_CENTER) + effect
    labels = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return {"age": age, "language": language.astype(np.bytes_)}, labels


definition = ModelDefinition(
    build_model=build_model,
    serving_input=ParsingServingInput(FEATURES),
    export_outputs={
        "serving_default": ClassificationOutput(scores="probabilities", classes="all_classes"),
        "predict": PredictOutput(),
    },
    predictions=predictions,
    supervised_input=SupervisedInput(FEATURES, label=LABEL),
    loss=loss,
    make_optimizer=make_optimizer,
    metrics={"accuracy": accuracy},
    checkpoint=TrackableCheckpoint(model="model", optimizer="optimizer", step="step"),
)

# The same model for checkpoints that Keras writes: `model.save_weights(f"{model_dir}/ckpt-
# {step}.weights.h5")` or ModelCheckpoint(..., save_weights_only=True). DAGs name it as
# "airflow_tf_export.example.model:keras_weights_definition".
keras_weights_definition = dataclasses.replace(definition, checkpoint=KerasWeights())
