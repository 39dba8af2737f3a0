"""The optimizer state a train-mode export starts from, when the checkpoint holds the optimizer
as its own object (`tf.train.Checkpoint(model=, optimizer=, step=)`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from savedmodel_support import exported_optimizer_state

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel import CheckpointMismatchError, write_saved_model


def _saved(model: Any, optimizer: Any, model_dir: Path, step: int) -> str:
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, step=tf.Variable(step, dtype=tf.int64)
    )
    return str(tf.train.CheckpointManager(checkpoint, str(model_dir), max_to_keep=None).save(step))


def _one_step(model: Any, optimizer: Any) -> None:
    import tensorflow as tf

    features, labels = example.make_dataset(16, seed=1)
    inputs = {name: tf.constant(values) for name, values in features.items()}
    with tf.GradientTape() as tape:
        loss = example.loss(tf.constant(labels), model(inputs, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))


def _adam() -> Any:
    return example.make_optimizer()


def _sgd_momentum() -> Any:
    import keras

    return keras.optimizers.SGD(learning_rate=0.05, momentum=0.9)


@pytest.mark.parametrize("make_saved_optimizer", [_adam, _sgd_momentum])
def test_a_checkpoint_from_before_the_first_step_trains_from_a_new_optimizer(
    tmp_path: Path, make_saved_optimizer: Callable[[], Any]
) -> None:
    """Keras creates slot variables on the first step, so such a checkpoint holds only the
    step count (0) and the learning rate: nothing was learned, and the train mode starts from
    make_optimizer()'s optimizer as it builds it (its learning rate, too)."""
    model, saved_optimizer = example.build_model(), make_saved_optimizer()
    saved_optimizer.learning_rate = 0.5
    path = _saved(model, saved_optimizer, tmp_path / "model_dir", step=0)

    written = write_saved_model(
        example.definition, path, tmp_path / "export", modes=("train", "serve")
    )

    assert written.global_step == 0
    state = exported_optimizer_state(tmp_path / "export")
    assert int(state.pop("iteration")) == 0
    assert state.pop("learning_rate") == pytest.approx(example.make_optimizer().learning_rate)
    assert state  # Adam's moments and velocities, created by the export's optimizer
    for name, value in state.items():
        np.testing.assert_array_equal(value, np.zeros_like(value), err_msg=name)


def test_a_checkpoint_from_before_the_first_step_suits_a_scheduled_learning_rate(
    tmp_path: Path,
) -> None:
    """make_optimizer() may use a learning-rate schedule where training saved a fixed rate:
    before the first step there is nothing to carry over."""
    import keras

    def scheduled_adam() -> Any:
        schedule = keras.optimizers.schedules.ExponentialDecay(0.05, 100, 0.9)
        return keras.optimizers.Adam(learning_rate=schedule)

    path = _saved(example.build_model(), _adam(), tmp_path / "model_dir", step=0)
    definition = dataclasses.replace(example.definition, make_optimizer=scheduled_adam)

    written = write_saved_model(definition, path, tmp_path / "export", modes=("train", "serve"))

    assert written.tags == ("train", "serve")
    assert int(exported_optimizer_state(tmp_path / "export")["iteration"]) == 0


def test_trained_loss_scale_optimizer_state_is_a_mismatch_for_adam(tmp_path: Path) -> None:
    """A LossScaleOptimizer's own step count stays 0 while its inner optimizer steps: its
    trained state is no "before the first step" state to replace with a new Adam."""
    import keras

    model = example.build_model()
    optimizer = keras.optimizers.LossScaleOptimizer(example.make_optimizer())
    _one_step(model, optimizer)
    path = _saved(model, optimizer, tmp_path / "model_dir", step=1)

    with pytest.raises(CheckpointMismatchError) as raised:
        write_saved_model(example.definition, path, tmp_path / "export", modes=("train", "serve"))

    assert any("optimizer/inner_optimizer/" in name for name in raised.value.unexpected)
    assert not (tmp_path / "export").exists()


def test_stepped_state_of_another_optimizer_class_is_a_mismatch(tmp_path: Path) -> None:
    """SGD-with-momentum state that did step is not silently dropped for Adam's."""
    model, optimizer = example.build_model(), _sgd_momentum()
    _one_step(model, optimizer)
    path = _saved(model, optimizer, tmp_path / "model_dir", step=1)

    with pytest.raises(CheckpointMismatchError) as raised:
        write_saved_model(example.definition, path, tmp_path / "export", modes=("train", "serve"))

    assert any("velocity (optimizer/_variables/" in name for name in raised.value.missing)
    assert path in str(raised.value)
    assert not (tmp_path / "export").exists()
