"""Shared, expensive setup for the SavedModel tests: the example model trained once.

A few real training steps write real checkpoints with tf.train.CheckpointManager, in the
layout `airflow_tf_export.example.model` documents; exports are written once per session.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from savedmodel_support import STEPS_PER_CHECKPOINT, Export, TrainedExample

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel.writer import write_saved_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def trained_example(tmp_path_factory: pytest.TempPathFactory) -> TrainedExample:
    import tensorflow as tf

    model_dir = tmp_path_factory.mktemp("example_model_dir")
    model = example.build_model()
    optimizer = example.make_optimizer()
    step = tf.Variable(0, dtype=tf.int64)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model, optimizer=optimizer, step=step),
        str(model_dir),
        max_to_keep=None,
    )
    features, labels = example.make_dataset(256, seed=0)

    @tf.function
    def train_step(batch: dict[str, Any], batch_labels: Any) -> Any:
        with tf.GradientTape() as tape:
            loss = example.loss(batch_labels, model(batch, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        step.assign_add(1)
        return loss

    checkpoints = []
    for _ in range(2):
        for _ in range(STEPS_PER_CHECKPOINT):
            train_step(features, labels)
        checkpoints.append(manager.save(checkpoint_number=int(step.numpy())))
    held_out, held_out_labels = example.make_dataset(32, seed=1)
    return TrainedExample(model_dir, tuple(checkpoints), held_out, held_out_labels)


@pytest.fixture(scope="session")
def restored_example(trained_example: TrainedExample) -> Any:
    """The example model restored from the latest checkpoint by TensorFlow directly."""
    import tensorflow as tf

    model = example.build_model()
    tf.train.Checkpoint(model=model).read(trained_example.latest).expect_partial()
    return model


@pytest.fixture(scope="session")
def multi_mode_export(
    trained_example: TrainedExample, tmp_path_factory: pytest.TempPathFactory
) -> Export:
    path = tmp_path_factory.mktemp("multi") / "export"
    written = write_saved_model(
        example.definition, trained_example.latest, path, modes=("train", "eval", "serve")
    )
    return Export(path, written)


@pytest.fixture(scope="session")
def serving_export(
    trained_example: TrainedExample, tmp_path_factory: pytest.TempPathFactory
) -> Export:
    path = tmp_path_factory.mktemp("serving") / "export"
    return Export(path, write_saved_model(example.definition, trained_example.latest, path))
