"""Write this folder's checkpoints with the real tf.estimator (TensorFlow 2.15).

Run it with TensorFlow 2.15.1 and tensorflow-estimator 2.15.0 (tests/data/estimator/README.md
says how to make that venv). For every case of CASES it trains the model for STEPS steps in
`<case>/model_dir/`, keeps only the checkpoint (`model.ckpt-<STEPS>.index` and `.data-*`)
and the `checkpoint` state file, and writes `<case>/reference.json`: the checkpoint's
variables, EXAMPLES fixed examples with labels, the Estimator's `predict` on them, and
`evaluate` on them as one batch.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import support_models as models  # noqa: E402

STEPS = 40
BATCH = 16
EXAMPLES = 8
TRAIN_EXAMPLES = 256
PARTITIONER = tf.compat.v1.fixed_size_partitioner(models.PARTITIONS)

CASES: dict[str, Callable[[str], Any]] = {
    "v1_linear_classifier": lambda model_dir: models.v1_linear_classifier(
        tf, tf.compat.v1.estimator, model_dir=model_dir, partitioner=PARTITIONER
    ),
    "v1_dnn_classifier": lambda model_dir: models.v1_dnn_classifier(
        tf, tf.compat.v1.estimator, model_dir=model_dir, input_layer_partitioner=PARTITIONER
    ),
    "v1_combined_classifier": lambda model_dir: models.v1_combined_classifier(
        tf, tf.compat.v1.estimator, model_dir=model_dir, input_layer_partitioner=PARTITIONER
    ),
    "keras_layers_named": lambda model_dir: tf.estimator.Estimator(
        models.keras_layers_model_fn(tf, tf.estimator), model_dir, params={"named": True}
    ),
    "keras_layers_unnamed": lambda model_dir: tf.estimator.Estimator(
        models.keras_layers_model_fn(tf, tf.estimator), model_dir, params={"named": False}
    ),
    "partitioned_model_fn": lambda model_dir: tf.estimator.Estimator(
        models.partitioned_model_fn(tf, tf.estimator), model_dir
    ),
}


def _tensors(data: dict[str, np.ndarray]) -> dict[str, Any]:
    return {k: tf.constant(v.tolist() if v.dtype == object else v) for k, v in data.items()}


def _jsonable(value: Any) -> Any:
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind == "S":
        return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v)(array).tolist()
    return array.tolist()


def generate(case: str) -> None:
    model_dir = HERE / case / "model_dir"
    shutil.rmtree(HERE / case, ignore_errors=True)
    train = models.features(TRAIN_EXAMPLES, seed=1)
    train_labels = models.labels(train, seed=2)

    def train_input() -> Any:
        dataset = tf.data.Dataset.from_tensor_slices((_tensors(train), train_labels))
        return dataset.shuffle(TRAIN_EXAMPLES, seed=3).repeat().batch(BATCH)

    tf.compat.v1.set_random_seed(4)
    estimator = CASES[case](str(model_dir))
    estimator.train(train_input, steps=STEPS)

    fixed = models.features(EXAMPLES, seed=9)
    fixed_labels = models.labels(fixed, seed=10)
    predicted = list(estimator.predict(lambda: tf.data.Dataset.from_tensors(_tensors(fixed))))
    evaluated = estimator.evaluate(
        lambda: tf.data.Dataset.from_tensors((_tensors(fixed), fixed_labels)), steps=1
    )
    checkpoint = tf.train.latest_checkpoint(str(model_dir))
    reader = tf.train.load_checkpoint(checkpoint)
    reference = {
        "checkpoint": Path(checkpoint).name,
        "variables": {
            name: list(shape) for name, shape in sorted(reader.get_variable_to_shape_map().items())
        },
        "features": {name: _jsonable(values) for name, values in fixed.items()},
        "labels": _jsonable(fixed_labels),
        "predictions": {
            key: _jsonable([p[key] for p in predicted]) for key in sorted(predicted[0])
        },
        "evaluation": {key: float(value) for key, value in sorted(evaluated.items())},
    }
    (HERE / case / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    for path in model_dir.iterdir():
        keep = path.name == "checkpoint" or path.name.startswith(f"{Path(checkpoint).name}.")
        if path.is_dir():
            shutil.rmtree(path)
        elif not keep or path.suffix == ".meta":
            path.unlink()
    (model_dir / "checkpoint").write_text(
        f'model_checkpoint_path: "{Path(checkpoint).name}"\n'
        f'all_model_checkpoint_paths: "{Path(checkpoint).name}"\n'
    )


if __name__ == "__main__":
    for name in sys.argv[1:] or CASES:
        generate(name)
