"""A custom Estimator model_fn as a migrating user has it, after their one-line change.

It was written for `tf.estimator`; the only change for TensorFlow 2.21 is the import of
`estimator` below. `generate.py` runs it under TensorFlow 2.15 with `tf.estimator` in its
place (it installs `tf.estimator` under that name before importing this module).
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from airflow_tf_export import estimator


def _dense(inputs: Any, units: int, name: str) -> Any:
    with tf.compat.v1.variable_scope(name):
        kernel = tf.compat.v1.get_variable(
            "kernel",
            [inputs.shape[-1], units],
            initializer=tf.compat.v1.glorot_uniform_initializer(),
        )
        bias = tf.compat.v1.get_variable("bias", [units], initializer=tf.zeros_initializer())
    return tf.matmul(inputs, kernel) + bias


def model_fn(features: Any, labels: Any, mode: str, params: dict[str, Any]) -> Any:
    """A small binary classifier: feature columns, ReLU layers, a sigmoid head, Adam."""
    net = tf.compat.v1.feature_column.input_layer(features, params["feature_columns"])
    for index, units in enumerate(params["hidden_units"]):
        net = tf.nn.relu(_dense(net, units, f"hidden_{index}"))
    logits = _dense(net, 1, "logits")
    probability = tf.sigmoid(logits)
    class_id = tf.cast(logits > 0.0, tf.int64)
    predictions = {"logits": logits, "probability": probability, "class_id": class_id}
    if mode == estimator.ModeKeys.PREDICT:
        scores = tf.concat([1.0 - probability, probability], axis=1)
        classes = tf.tile(tf.constant([["0", "1"]]), [tf.shape(logits)[0], 1])
        return estimator.EstimatorSpec(
            mode,
            predictions=predictions,
            export_outputs={
                "serving_default": estimator.export.ClassificationOutput(
                    scores=scores, classes=classes
                ),
                "predict": estimator.export.PredictOutput(predictions),
            },
        )
    labels = tf.reshape(tf.cast(labels, tf.float32), [-1, 1])
    loss = tf.compat.v1.losses.sigmoid_cross_entropy(labels, logits)
    metrics = {
        "accuracy": tf.compat.v1.metrics.accuracy(labels, tf.cast(class_id, tf.float32)),
        "mean_probability": tf.compat.v1.metrics.mean(probability),
    }
    if mode == estimator.ModeKeys.EVAL:
        return estimator.EstimatorSpec(
            mode, loss=loss, eval_metric_ops=metrics, predictions=predictions
        )
    optimizer = tf.compat.v1.train.AdamOptimizer(learning_rate=0.05)
    train_op = optimizer.minimize(loss, global_step=tf.compat.v1.train.get_global_step())
    return estimator.EstimatorSpec(mode, loss=loss, train_op=train_op, predictions=predictions)
