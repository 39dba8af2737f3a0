"""Keras weights file names (`<name>-<step>.weights.h5`): the step is read from the name."""

from __future__ import annotations

import pytest

from airflow_tf_export.core.checkpoints import (
    checkpoint_prefix,
    checkpoint_step,
    is_keras_weights,
    keras_weights_step,
)


@pytest.mark.parametrize(
    ("path", "step"),
    [
        ("ckpt-7.weights.h5", 7),
        ("/models/run/ckpt-1200.weights.h5", 1200),
        ("gs://bucket/run/model-0.weights.h5", 0),
        ("model.weights.h5", None),
        ("ckpt-7-final.weights.h5", None),
        ("gs://bucket/ckpt-5/model.weights.h5", None),
        ("ckpt-7", None),
        ("ckpt-7.h5", None),
    ],
)
def test_keras_weights_step(path: str, step: int | None) -> None:
    assert keras_weights_step(path) == step


def test_keras_weights_files_are_told_apart_from_tf_checkpoint_prefixes() -> None:
    assert is_keras_weights("gs://bucket/run/ckpt-7.weights.h5")
    assert not is_keras_weights("gs://bucket/run/ckpt-7")
    assert not is_keras_weights("ckpt-7.h5")
    # The TF helpers are unchanged: a weights file is neither a prefix nor a prefix's file.
    assert checkpoint_step("ckpt-7.weights.h5") is None
    assert checkpoint_prefix("ckpt-7.weights.h5") is None
