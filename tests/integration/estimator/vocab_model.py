"""A small model_fn over a vocabulary-file feature column, and a real TF1 checkpoint of it.

The checkpoint is written the way an Estimator wrote its own: a graph built by the model_fn
in TRAIN mode, its variables set, and `tf.compat.v1.train.Saver().save(..., global_step=)`,
giving `model.ckpt-<step>.{index,data-*,meta}` and the `checkpoint` state file.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from airflow_tf_export import estimator

# The vocabulary's ids: red 0, green 1, blue 2; anything else is the one OOV bucket, 3.
VOCABULARY = ("red", "green", "blue")
WEIGHTS = (1.0, 2.0, 3.0, 4.0)
STEP = 7


def feature_columns(vocabulary_file: str) -> list[Any]:
    import tensorflow as tf

    color = tf.feature_column.categorical_column_with_vocabulary_file(
        "color", vocabulary_file, vocabulary_size=len(VOCABULARY), num_oov_buckets=1
    )
    return [tf.feature_column.indicator_column(color)]


def model_fn(features: Any, labels: Any, mode: str, params: dict[str, Any]) -> Any:
    """score = the weight of the color's vocabulary id; squared error; plain SGD."""
    import tensorflow as tf

    one_hot = tf.compat.v1.feature_column.input_layer(features, params["feature_columns"])
    weights = tf.compat.v1.get_variable(
        "weights", [len(WEIGHTS), 1], initializer=tf.zeros_initializer()
    )
    score = tf.matmul(one_hot, weights)
    predictions = {"score": score}
    if mode == estimator.ModeKeys.PREDICT:
        return estimator.EstimatorSpec(mode, predictions=predictions)
    loss = tf.compat.v1.losses.mean_squared_error(tf.reshape(labels, [-1, 1]), score)
    train_op = tf.compat.v1.train.GradientDescentOptimizer(0.1).minimize(
        loss, global_step=tf.compat.v1.train.get_global_step()
    )
    return estimator.EstimatorSpec(mode, predictions=predictions, loss=loss, train_op=train_op)


def raw_receivers() -> dict[str, Any]:
    """One string placeholder `color` for serving; plus a float label for train and eval."""
    import tensorflow as tf

    with tf.Graph().as_default():
        color = tf.compat.v1.placeholder(tf.string, [None], name="color")
        label = tf.compat.v1.placeholder(tf.float32, [None], name="label")
    return {
        "serving_input_receiver_fn": estimator.export.build_raw_serving_input_receiver_fn(
            {"color": color}
        ),
        "supervised_input_receiver_fn": (
            estimator.experimental.build_raw_supervised_input_receiver_fn({"color": color}, label)
        ),
    }


def definition(vocabulary_file: Path, model: Any = model_fn, **receivers: Any) -> Any:
    return estimator.Estimator(
        model,
        params={"feature_columns": feature_columns(str(vocabulary_file))},
        **{**raw_receivers(), **receivers},
    )


def write_model_dir(
    model_dir: Path, vocabulary_source: Path, extra_variables: tuple[str, ...] = ()
) -> tuple[Path, str]:
    """The vocabulary file copied into `model_dir` and a checkpoint whose weights are
    WEIGHTS at global step STEP (plus scalar `extra_variables`, 1.0 each); returns the
    vocabulary file and the checkpoint prefix."""
    import tensorflow as tf

    model_dir.mkdir(parents=True)
    vocabulary = model_dir / "colors.txt"
    shutil.copyfile(vocabulary_source, vocabulary)
    graph = tf.Graph()
    with graph.as_default():
        step = tf.compat.v1.train.get_or_create_global_step()
        receiver = raw_receivers()["supervised_input_receiver_fn"]()
        model_fn(
            receiver.features,
            receiver.labels,
            estimator.ModeKeys.TRAIN,
            {"feature_columns": feature_columns(str(vocabulary))},
        )
        for name in extra_variables:
            tf.compat.v1.get_variable(name, [], initializer=tf.ones_initializer())
        (weights,) = [v for v in tf.compat.v1.global_variables() if v.op.name == "weights"]
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run([weights.assign([[w] for w in WEIGHTS]), step.assign(STEP)])
            prefix = saver.save(session, str(model_dir / "model.ckpt"), global_step=STEP)
    return vocabulary, prefix
