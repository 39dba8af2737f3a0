"""The DNN train step with dropout, checked against the Estimator's own train graph.

Dropout draws random masks, so one train step of the exported graph cannot reproduce the
step recorded in the reference. The oracle is the Estimator's own train graph instead (its
multi-mode export, `reference/all_modes`, loaded on TF 2.21): both graphs start from the same
variables, get the same uniform noise fed into their dropout ops, and must take the same
step. dnn_classifier's second hidden layer is dead at step 150 (every ReLU output is 0, so
its dropout changes nothing); both start from the checkpoint plus the same random offsets,
which bring it back to life, and the test checks that dropout then matters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import specs
from canned_support import (
    DATA,
    TOLERANCE,
    max_difference,
    reference,
    run_train_step,
    supervised_values,
    write_all_modes,
)

NAME = "dnn_classifier"


def _noise(seed: int, batch: int) -> list[np.ndarray]:
    """Uniform noise for each hidden layer's dropout, shaped as specs.py builds the model."""
    import tensorflow as tf

    hidden_units = specs.MODELS[NAME].options(tf)["hidden_units"]
    rng = np.random.RandomState(seed)
    return [rng.uniform(size=(batch, width)).astype(np.float32) for width in hidden_units]


def _offset_weights(checkpoint: Path) -> dict[str, np.ndarray]:
    """Every model weight of the checkpoint plus a random offset (the same for both graphs)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(checkpoint))
    rng = np.random.RandomState(5)
    return {
        name: reader.get_tensor(name) + rng.normal(scale=0.5, size=shape).astype(np.float32)
        for name, shape in sorted(reader.get_variable_to_shape_map().items())
        if name.startswith("dnn/")
    }


def test_train_step_with_dropout_matches_the_estimator_graph_under_the_same_noise(
    tmp_path: Path,
) -> None:
    values = supervised_values(NAME)
    batch = len(values["label"])
    export_dir = write_all_modes(NAME, tmp_path)
    start = _offset_weights(tmp_path / NAME / "model.ckpt-150")
    noise = (_noise(1, batch), _noise(2, batch))
    loss, after = run_train_step(export_dir, values, start=start, noise=noise)
    kept = [np.ones_like(n) for n in noise[0]]
    loss_without_dropout, _ = run_train_step(export_dir, values, start=start, noise=(kept, kept))
    assert abs(loss - loss_without_dropout) > 1e-3, (
        "dropout must matter for the check to mean anything"
    )

    estimator_export = DATA / NAME / reference(NAME)["all_modes_export"]
    expected_loss, expected = run_train_step(estimator_export, values, start=start, noise=noise)
    assert abs(loss - expected_loss) <= TOLERANCE
    assert sorted(after) == sorted(expected)
    for key, value in after.items():
        assert max_difference(value, expected[key]) <= TOLERANCE, key
    assert int(after["global_step"]) == 151
