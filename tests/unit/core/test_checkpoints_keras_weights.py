"""Keras weights file names (`<name>-<step>.weights.h5`): the step is read from the name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

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


@given(
    st.from_regex(r"(gs://[a-z]{3,8}/|/)?([a-z0-9_]{1,6}/){0,3}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9_.]{0,10}", fullmatch=True),
    st.integers(0, 10**12),
)
def test_the_step_round_trips_through_the_name(directory: str, name: str, step: int) -> None:
    path = f"{directory}{name}-{step}.weights.h5"
    assert is_keras_weights(path)
    assert keras_weights_step(path) == step
    assert keras_weights_step(f"{directory}{name}-{step}") is None
