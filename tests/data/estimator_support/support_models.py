"""The models of this folder's checkpoints, on both sides of the migration.

`generate.py` builds them under TensorFlow 2.15 with `tf.estimator` and
`tf.compat.v1.estimator`; the tests build the same model_fns under TensorFlow 2.21 with
`airflow_tf_export.estimator`. Every builder takes the TensorFlow module and the estimator
module, so only the estimator module differs between the two sides.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

LANGUAGES = ("en", "fr", "de")
PARTITIONS = 2


def features(count: int, seed: int) -> dict[str, np.ndarray]:
    """`count` examples: an age (float32, 18..80) and a language (some out of vocabulary)."""
    rng = np.random.RandomState(seed)
    return {
        "age": rng.uniform(18.0, 80.0, count).astype(np.float32),
        "language": rng.choice([*LANGUAGES, "es"], count).astype(object),
    }


def labels(data: dict[str, np.ndarray], seed: int) -> np.ndarray:
    """Binary labels that depend on both features, with noise."""
    score = (data["age"] - 45.0) / 12.0 + np.where(data["language"] == "fr", 1.5, -0.3)
    noise = np.random.RandomState(seed).logistic(size=score.shape)
    return (score + noise > 0).astype(np.int64)


def columns(tf: Any) -> dict[str, Any]:
    fc = tf.feature_column
    language = fc.categorical_column_with_vocabulary_list("language", LANGUAGES)
    return {
        "age": fc.numeric_column("age", normalizer_fn=lambda value: (value - 45.0) / 15.0),
        "language": language,
        "language_indicator": fc.indicator_column(language),
        "language_embedding": fc.embedding_column(language, dimension=3),
    }


def v1_linear_classifier(tf: Any, estimator: Any, **extra: Any) -> Any:
    """tf.compat.v1.estimator.LinearClassifier with partitioned weights (the partitioner
    argument is given by generate.py only: this package's LinearClassifier has none)."""
    c = columns(tf)
    return estimator.LinearClassifier(feature_columns=[c["age"], c["language"]], **extra)


def v1_dnn_classifier(tf: Any, estimator: Any, **extra: Any) -> Any:
    """tf.compat.v1.estimator.DNNClassifier with a partitioned input layer (the
    input_layer_partitioner argument is given by generate.py only)."""
    c = columns(tf)
    return estimator.DNNClassifier(
        hidden_units=[4], feature_columns=[c["age"], c["language_embedding"]], **extra
    )


def v1_combined_classifier(tf: Any, estimator: Any, **extra: Any) -> Any:
    """tf.compat.v1.estimator.DNNLinearCombinedClassifier, linear and DNN parts, a
    partitioned DNN input layer (input_layer_partitioner, given by generate.py only)."""
    c = columns(tf)
    return estimator.DNNLinearCombinedClassifier(
        linear_feature_columns=[c["language"]],
        dnn_feature_columns=[c["age"], c["language_embedding"]],
        dnn_hidden_units=[4],
        **extra,
    )


def _head(tf: Any, estimator: Any, logits: Any, labels: Any, mode: str) -> Any:
    """A sigmoid head with Adam, shared by the custom model_fns below."""
    probability = tf.sigmoid(logits)
    predictions = {"probability": probability}
    if mode == estimator.ModeKeys.PREDICT:
        return estimator.EstimatorSpec(
            mode,
            predictions=predictions,
            export_outputs={"serving_default": estimator.export.PredictOutput(predictions)},
        )
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1, 1])
    loss = tf.compat.v1.losses.sigmoid_cross_entropy(labels, logits)
    if mode == estimator.ModeKeys.EVAL:
        metrics = {"mean_probability": tf.compat.v1.metrics.mean(probability)}
        return estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops=metrics, predictions=predictions
        )
    optimizer = tf.compat.v1.train.AdamOptimizer(learning_rate=0.05)
    train_op = optimizer.minimize(loss, global_step=tf.compat.v1.train.get_global_step())
    return estimator.EstimatorSpec(mode, loss=loss, train_op=train_op, predictions=predictions)


def keras_layers_model_fn(tf: Any, estimator: Any) -> Callable[..., Any]:
    """A model_fn whose layers are tf.keras.layers.Dense; `params["named"]` gives each layer
    a name (Keras 2 and Keras 3 then name its variables alike) or leaves Keras to number
    them."""

    def model_fn(features: Any, labels: Any, mode: str, params: dict[str, Any]) -> Any:
        c = columns(tf)
        net = tf.compat.v1.feature_column.input_layer(features, [c["age"], c["language_indicator"]])
        names = ("hidden", "logits") if params["named"] else (None, None)
        hidden = tf.keras.layers.Dense(4, activation="relu", name=names[0])(net)
        logits = tf.keras.layers.Dense(1, name=names[1])(hidden)
        return _head(tf, estimator, logits, labels, mode)

    return model_fn


def partitioned_model_fn(tf: Any, estimator: Any) -> Callable[..., Any]:
    """A model_fn whose weights are a variable partitioned in two (tf.compat.v1.get_variable
    in a variable scope with a partitioner)."""

    def model_fn(features: Any, labels: Any, mode: str) -> Any:
        c = columns(tf)
        net = tf.compat.v1.feature_column.input_layer(features, [c["age"], c["language_indicator"]])
        partitioner = tf.compat.v1.fixed_size_partitioner(PARTITIONS)
        with tf.compat.v1.variable_scope("linear", partitioner=partitioner):
            weights = tf.compat.v1.get_variable(
                "weights", [4, 1], initializer=tf.compat.v1.zeros_initializer()
            )
        bias = tf.compat.v1.get_variable("bias", [1], initializer=tf.zeros_initializer())
        logits = tf.matmul(net, tf.convert_to_tensor(weights)) + bias
        return _head(tf, estimator, logits, labels, mode)

    return model_fn
