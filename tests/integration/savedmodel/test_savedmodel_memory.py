"""An export leaves nothing of the model it built alive in the process.

TensorFlow keeps the gradient function of every tf.custom_gradient traced into a graph in a
process-wide registry, and with it the graph and the variables it captured. A Keras
optimizer step traces one; so may the user's own layers. A process that exports many
checkpoints (a backfill in one task, a notebook) must not keep a copy of the model per export.
"""

from __future__ import annotations

import dataclasses
import gc
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from savedmodel_support import (
    TrainedExample,
    halving_gradient_definition,
    halving_gradient_model,
    model_checkpoint,
)

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel import write_saved_model


def _watching(build_model: Callable[[], Any], handles: list[weakref.ref[Any]]) -> Callable[[], Any]:
    """build_model, recording a weak reference to each variable's resource handle it creates."""

    def build() -> Any:
        model = build_model()
        handles.extend(weakref.ref(variable.value.handle) for variable in model.weights)
        return model

    return build


def _registered_gradients() -> int:
    from tensorflow.python.framework import ops

    return len(ops.gradient_registry.list())


@pytest.mark.parametrize("modes", [("train", "eval", "serve"), ("train",), ("serve",)])
def test_export_frees_the_model_variables(
    trained_example: TrainedExample, tmp_path: Path, modes: tuple[str, ...]
) -> None:
    handles: list[weakref.ref[Any]] = []
    definition = dataclasses.replace(
        example.definition, build_model=_watching(example.build_model, handles)
    )
    registered = _registered_gradients()

    write_saved_model(definition, trained_example.latest, tmp_path / "export", modes=modes)
    gc.collect()

    assert handles
    assert [ref for ref in handles if ref() is not None] == []
    assert _registered_gradients() == registered


def test_export_of_a_model_with_its_own_custom_gradient_frees_it(tmp_path: Path) -> None:
    import tensorflow as tf

    handles: list[weakref.ref[Any]] = []
    definition = halving_gradient_definition(_watching(halving_gradient_model, handles))
    before_build = _registered_gradients()
    trained = halving_gradient_model()
    # Keras traces the layer to infer shapes while building: that registration is the build's.
    by_build = _registered_gradients() - before_build
    checkpoint = model_checkpoint(trained, tmp_path / "model_dir", step=3)
    registered = _registered_gradients()

    write_saved_model(definition, checkpoint, tmp_path / "export", modes=("eval", "serve"))
    gc.collect()

    assert handles
    assert [ref for ref in handles if ref() is not None] == []
    assert _registered_gradients() == registered + by_build
    x = np.array([[1.0, -2.0, 3.0]], np.float32)
    loaded = tf.saved_model.load(str(tmp_path / "export"), tags=["serve"])
    served = loaded.signatures["serving_default"]
    np.testing.assert_allclose(
        served(x=tf.constant(x))["output"].numpy(), trained({"x": x}).numpy(), atol=1e-6
    )
