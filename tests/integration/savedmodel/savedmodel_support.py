"""Types and helpers shared by the SavedModel integration tests (imported by conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from airflow_tf_export.storage.base import WrittenModel

STEPS_PER_CHECKPOINT = 10


@dataclass(frozen=True)
class TrainedExample:
    """A model dir with checkpoints ckpt-10 and ckpt-20, and a fixed evaluation batch."""

    model_dir: Path
    checkpoints: tuple[str, ...]
    features: dict[str, np.ndarray]
    labels: np.ndarray

    @property
    def latest(self) -> str:
        return self.checkpoints[-1]


@dataclass(frozen=True)
class Export:
    path: Path
    written: WrittenModel


def serialized_examples(features: dict[str, np.ndarray]) -> list[bytes]:
    """The features as serialized tf.Example protos, one per row."""
    import tensorflow as tf

    rows = []
    for age, language in zip(features["age"], features["language"], strict=True):
        feature = {
            "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(age)])),
            "language": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(language)])),
        }
        rows.append(
            tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
        )
    return rows


def model_probabilities(model: Any, features: dict[str, np.ndarray]) -> np.ndarray:
    """The Keras model's probabilities of class 1, shape (batch,)."""
    import tensorflow as tf

    inputs = {name: tf.constant(values) for name, values in features.items()}
    return np.asarray(model(inputs, training=False))[:, 0]


def model_checkpoint(model: Any, model_dir: Path, step: int) -> str:
    """`model` saved as tf.train.CheckpointManager saves `Checkpoint(model=, step=)`; the prefix."""
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(step, dtype=tf.int64))
    return str(tf.train.CheckpointManager(checkpoint, str(model_dir), max_to_keep=None).save(step))
