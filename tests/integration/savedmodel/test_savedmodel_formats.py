"""Other checkpoint formats, a tf.Module model, text SavedModels and assets_extra."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from savedmodel_support import TrainedExample, model_probabilities, serialized_examples

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel import (
    Feature,
    KerasWeights,
    ModelDefinition,
    ParsingServingInput,
    PredictOutput,
    RegressionOutput,
    SupervisedInput,
    TrackableCheckpoint,
    write_saved_model,
)

X = {"x": Feature("float32", (3,))}


def _linear_regressor() -> Any:
    """A plain tf.Module: value = x @ w + b."""
    import tensorflow as tf

    class LinearRegressor(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable([[1.0], [-2.0], [0.5]], name="w")
            self.b = tf.Variable([0.25], name="b")

        def __call__(self, features: dict[str, Any]) -> dict[str, Any]:
            return {"value": (tf.matmul(features["x"], self.w) + self.b)[:, 0]}

    return LinearRegressor()


def _mean_squared_error(labels: Any, outputs: dict[str, Any]) -> Any:
    import tensorflow as tf

    return tf.reduce_mean(tf.square(outputs["value"] - labels))


def _sgd() -> Any:
    import keras

    return keras.optimizers.SGD(learning_rate=0.05)


REGRESSOR = ModelDefinition(
    build_model=_linear_regressor,
    serving_input=ParsingServingInput(X),
    export_outputs={"serving_default": RegressionOutput("value"), "predict": PredictOutput()},
    supervised_input=SupervisedInput(X, label=Feature("float32")),
    loss=_mean_squared_error,
    make_optimizer=_sgd,
    checkpoint=TrackableCheckpoint(model="model", optimizer=None, step=None),
)


def _x_examples(x: np.ndarray) -> list[bytes]:
    import tensorflow as tf

    return [
        tf.train.Example(
            features=tf.train.Features(
                feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=list(row)))}
            )
        ).SerializeToString()
        for row in x
    ]


def test_a_tf_module_exports_regress_and_train_signatures(tmp_path: Path) -> None:
    import tensorflow as tf

    module = _linear_regressor()
    module.w.assign([[0.5], [1.5], [-1.0]])
    prefix = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=module), str(tmp_path / "model_dir"), max_to_keep=None
    ).save(checkpoint_number=3)
    written = write_saved_model(REGRESSOR, prefix, tmp_path / "export", modes=("serve", "train"))
    assert written.global_step == 3
    assert written.signature_keys == {"train": ("train",), "serve": ("predict", "serving_default")}

    x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
    expected = module({"x": tf.constant(x)})["value"].numpy()
    serving = tf.saved_model.load(str(tmp_path / "export"), tags=["serve"])
    regressed = serving.signatures["serving_default"](inputs=tf.constant(_x_examples(x)))
    np.testing.assert_allclose(regressed["outputs"], expected, atol=1e-6)

    train = tf.saved_model.load(str(tmp_path / "export"), tags=["train"]).signatures["train"]
    labels = tf.constant(x @ np.array([1.0, 1.0, 1.0], dtype=np.float32))
    losses = [float(train(x=tf.constant(x), label=labels)["loss"]) for _ in range(5)]
    assert losses[-1] < losses[0], losses


def test_keras_weights_files_restore_and_give_the_step(
    trained_example: TrainedExample, restored_example: Any, tmp_path: Path
) -> None:
    import tensorflow as tf

    weights = tmp_path / "ckpt-7.weights.h5"
    restored_example.save_weights(str(weights))
    definition = dataclasses.replace(example.definition, checkpoint=KerasWeights())
    written = write_saved_model(
        definition, str(weights), tmp_path / "export", modes=("train", "serve")
    )
    assert written.global_step == 7
    loaded = tf.saved_model.load(str(tmp_path / "export"), tags=["serve"])
    predicted = loaded.signatures["predict"](
        examples=tf.constant(serialized_examples(trained_example.features))
    )
    expected = model_probabilities(restored_example, trained_example.features)
    np.testing.assert_allclose(predicted["logistic"], expected, atol=1e-6)


def test_as_text_writes_a_pbtxt_that_both_loaders_read(
    trained_example: TrainedExample, restored_example: Any, tmp_path: Path
) -> None:
    import tensorflow as tf

    export = tmp_path / "export"
    write_saved_model(
        example.definition, trained_example.latest, export, modes=("serve", "eval"), as_text=True
    )
    names = {path.name for path in export.iterdir()}
    assert "saved_model.pbtxt" in names
    assert not names & {"saved_model.pb", "fingerprint.pb"}
    assert "meta_info_def" in (export / "saved_model.pbtxt").read_text()
    examples = serialized_examples(trained_example.features)
    predicted = tf.saved_model.load(str(export), tags=["serve"]).signatures["predict"](
        examples=tf.constant(examples)
    )
    expected = model_probabilities(restored_example, trained_example.features)
    np.testing.assert_allclose(predicted["logistic"], expected, atol=1e-6)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["eval"], str(export))
        assert "eval" in meta_graph.signature_def


def test_assets_extra_are_copied_into_assets_extra(
    trained_example: TrainedExample, tmp_path: Path
) -> None:
    import tensorflow as tf

    source = tmp_path / "my_extra_file"
    source.write_text("extra")
    export = tmp_path / "export"
    write_saved_model(
        example.definition,
        trained_example.latest,
        export,
        assets_extra={"some/sub/directory/my_extra_file": str(source), "top.txt": str(source)},
    )
    assert (export / "assets.extra/some/sub/directory/my_extra_file").read_text() == "extra"
    assert (export / "assets.extra/top.txt").read_text() == "extra"
    assert "serving_default" in tf.saved_model.load(str(export), tags=["serve"]).signatures


@pytest.mark.parametrize("checkpoint_index", [0, 1])
def test_each_kept_checkpoint_exports_its_own_step_and_values(
    trained_example: TrainedExample, checkpoint_index: int, tmp_path: Path
) -> None:
    import tensorflow as tf

    checkpoint = trained_example.checkpoints[checkpoint_index]
    written = write_saved_model(example.definition, checkpoint, tmp_path / "export")
    assert written.global_step == 10 * (checkpoint_index + 1)
    model = example.build_model()
    tf.train.Checkpoint(model=model).read(checkpoint).expect_partial()
    predicted = tf.saved_model.load(str(tmp_path / "export"), tags=["serve"]).signatures["predict"](
        examples=tf.constant(serialized_examples(trained_example.features))
    )
    expected = model_probabilities(model, trained_example.features)
    np.testing.assert_allclose(predicted["logistic"], expected, atol=1e-6)
