"""Checkpoints of the everyday Keras workflow, `model.compile(...)` then `model.fit(...)`:
the compiled model tracks its optimizer, so both checkpoint formats hold optimizer state under
the model. That is not model state and must not be reported as a mismatch."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from savedmodel_support import (
    compiling_example_model,
    model_checkpoint,
    model_probabilities,
    serialized_examples,
)

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel import KerasWeights, write_saved_model


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str, str]:
    """A compiled, fitted example model; its tf.train.Checkpoint and its weights file."""
    import tensorflow as tf

    model_dir = tmp_path_factory.mktemp("compiled")
    model, optimizer = example.build_model(), example.make_optimizer()
    model.compile(optimizer=optimizer, loss="binary_crossentropy")
    features, labels = example.make_dataset(64, seed=0)
    batches = tf.data.Dataset.from_tensor_slices((features, labels.astype("float32")))
    model.fit(batches.batch(16), epochs=1, verbose=0)
    step = int(optimizer.iterations.numpy())
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, step=tf.Variable(step, dtype=tf.int64)
    )
    path = tf.train.CheckpointManager(checkpoint, str(model_dir), None).save(step)
    weights = str(model_dir / f"ckpt-{step}.weights.h5")
    model.save_weights(weights)
    return model, path, weights


@pytest.mark.parametrize("checkpoint_format", ["trackable", "keras_weights"])
def test_a_compiled_models_checkpoint_exports_and_serves_its_outputs(
    fitted: tuple[Any, str, str], checkpoint_format: str, tmp_path: Path
) -> None:
    import tensorflow as tf

    model, path, weights = fitted
    definition = example.definition
    if checkpoint_format == "keras_weights":
        definition, path = dataclasses.replace(definition, checkpoint=KerasWeights()), weights
    write_saved_model(definition, path, tmp_path / "export")

    features, _ = example.make_dataset(16, seed=1)
    loaded = tf.saved_model.load(str(tmp_path / "export"), tags=["serve"])
    examples = tf.constant(serialized_examples(features))
    scores = loaded.signatures["serving_default"](inputs=examples)["scores"]
    np.testing.assert_allclose(scores[:, 1], model_probabilities(model, features), atol=1e-6)


@pytest.mark.parametrize("build_model", [example.build_model, compiling_example_model])
def test_the_train_mode_continues_a_compiled_models_optimizer_state(
    fitted: tuple[Any, str, str], tmp_path: Path, build_model: Callable[[], Any]
) -> None:
    """The checkpoint holds the optimizer only under the model (`tf.train.Checkpoint(model=
    ...)` of a compiled model): the train signature starts from that state, not a new one,
    whether build_model compiles or not."""
    import tensorflow as tf

    model, _, _ = fitted
    path = model_checkpoint(model, tmp_path / "model_only", 4)
    definition = dataclasses.replace(example.definition, build_model=build_model)
    write_saved_model(definition, path, tmp_path / "export", modes=("train", "serve"))

    trained_state = {
        str(v.path).rsplit("/", 1)[-1]: v.numpy()
        for v in model.optimizer.variables
        if "learning_rate" not in v.path
    }
    assert int(trained_state["iteration"]) > 0
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        tf.compat.v1.saved_model.loader.load(session, ["train"], str(tmp_path / "export"))
        handles = {
            op.name.rsplit("/", 1)[-1]: op.outputs[0]
            for op in session.graph.get_operations()
            if op.type == "VarHandleOp"
        }
        exported = {
            name: session.run(tf.raw_ops.ReadVariableOp(resource=handles[name], dtype=value.dtype))
            for name, value in trained_state.items()
        }
    for name, value in trained_state.items():
        np.testing.assert_array_equal(exported[name], value, err_msg=name)


@pytest.mark.parametrize("trained_with", ["not-yet-fitted", "sgd-momentum"])
def test_optimizer_state_of_another_layout_gives_the_train_mode_a_new_optimizer(
    trained_with: str, tmp_path: Path
) -> None:
    """State saved before the first step (no slot variables yet), or by another optimizer
    class than make_optimizer's, is not restored into it: the train mode starts afresh, as
    when the checkpoint holds no optimizer."""
    import keras
    import tensorflow as tf

    model = example.build_model()
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="binary_crossentropy")
    if trained_with == "sgd-momentum":
        features, labels = example.make_dataset(32, seed=0)
        batches = tf.data.Dataset.from_tensor_slices((features, labels.astype("float32")))
        model.fit(batches.batch(16), epochs=1, verbose=0)
    path = model_checkpoint(model, tmp_path / "model_dir", 2)
    write_saved_model(example.definition, path, tmp_path / "export", modes=("train", "serve"))

    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        tf.compat.v1.saved_model.loader.load(session, ["train"], str(tmp_path / "export"))
        (iteration,) = [
            op.outputs[0]
            for op in session.graph.get_operations()
            if op.type == "VarHandleOp" and op.name.endswith("/iteration")
        ]
        assert session.run(tf.raw_ops.ReadVariableOp(resource=iteration, dtype=tf.int64)) == 0
