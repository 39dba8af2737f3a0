"""Keras layers whose serving behaviour depends on more than their variables' values."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from savedmodel_support import model_checkpoint

from airflow_tf_export.savedmodel import (
    Feature,
    KerasWeights,
    ModelDefinition,
    RawServingInput,
    write_saved_model,
)


def _build_normalizing_model() -> Any:
    import keras

    inputs = keras.Input(shape=(3,), name="x")
    normalized = keras.layers.Normalization(name="norm")(inputs)
    return keras.Model({"x": inputs}, keras.layers.Dense(2, name="head")(normalized))


@pytest.mark.parametrize("checkpoint_format", ["trackable", "keras_weights"])
def test_an_adapted_normalization_layer_serves_with_its_checkpointed_statistics(
    checkpoint_format: str, tmp_path: Path
) -> None:
    import tensorflow as tf

    data = np.array([[1.0, 2.0, 3.0], [3.0, 6.0, 9.0], [5.0, 1.0, 0.0]], np.float32)
    trained = _build_normalizing_model()
    trained.get_layer("norm").adapt(data)
    definition = ModelDefinition(
        build_model=_build_normalizing_model,
        serving_input=RawServingInput({"x": Feature("float32", (3,))}),
    )
    if checkpoint_format == "trackable":
        path = model_checkpoint(trained, tmp_path / "model_dir", 3)
    else:
        path = str(tmp_path / "ckpt-3.weights.h5")
        trained.save_weights(path)
        definition = dataclasses.replace(definition, checkpoint=KerasWeights())
    write_saved_model(definition, path, tmp_path / "export")

    served = tf.saved_model.load(str(tmp_path / "export")).signatures["serving_default"](
        x=tf.constant(data)
    )["output"]
    np.testing.assert_allclose(served, trained({"x": data}), atol=1e-6)
