"""Benchmark: SavedModel export time against a plain tf.saved_model.save, in one process.

A Keras model with about 10 MB of float32 variables is trained one step and checkpointed
with tf.train.CheckpointManager. Then, round after round (one warm-up round not counted):

  (a) single  write_saved_model(modes=("serve",)): build, restore, trace, save, rewrite
  (b) multi   write_saved_model(modes=("train", "eval", "serve"))
  (c) plain   tf.saved_model.save of the same model, already restored, with one serving
              signature traced in the timed section

Targets: median(a)/median(c) <= 1.2 and median(b)/median(c) <= 2.0. The last line printed
is one JSON object with the figures. (a) and (b) pay for building the model, whose
initializers fill 10 MB before the checkpoint overwrites it, and for restoring it; (c) does
not. Single exports vary by about 15% on a shared machine, hence 15 rounds by default.

Run: .venv/bin/python benchmarks/bench_export.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from airflow_tf_export.savedmodel import (
    Feature,
    ModelDefinition,
    RawServingInput,
    SupervisedInput,
    write_saved_model,
)

INPUT_WIDTH = 512
HIDDEN = (2048, 768)
SINGLE_TARGET = 1.2
MULTI_TARGET = 2.0
FEATURES = {"x": Feature("float32", (INPUT_WIDTH,))}


def build_model() -> Any:
    """An MLP of 512 -> 2048 -> 768 -> 1: 2.6 M float32 parameters, about 10.5 MB."""
    import keras

    inputs = keras.Input(shape=(INPUT_WIDTH,), name="x")
    hidden = inputs
    for width in HIDDEN:
        hidden = keras.layers.Dense(width, activation="relu")(hidden)
    return keras.Model({"x": inputs}, keras.layers.Dense(1)(hidden))


def mean_squared_error(labels: Any, outputs: Any) -> Any:
    import keras

    return keras.ops.mean(keras.ops.square(outputs[:, 0] - labels))


def make_optimizer() -> Any:
    import keras

    return keras.optimizers.SGD(learning_rate=0.01)


DEFINITION = ModelDefinition(
    build_model=build_model,
    serving_input=RawServingInput(FEATURES),
    supervised_input=SupervisedInput(FEATURES, label=Feature("float32")),
    loss=mean_squared_error,
    make_optimizer=make_optimizer,
)


def write_checkpoint(model_dir: Path) -> tuple[str, Any]:
    """Train one step and save ckpt-1; return its path and the trained model."""
    import numpy as np
    import tensorflow as tf

    model, optimizer = build_model(), make_optimizer()
    step = tf.Variable(0, dtype=tf.int64)
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(32, INPUT_WIDTH)).astype(np.float32))
    y = tf.constant(rng.normal(size=(32,)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = mean_squared_error(y, model({"x": x}, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    step.assign_add(1)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, str(model_dir), max_to_keep=None)
    return manager.save(checkpoint_number=1), model


def restored_model(checkpoint: str) -> Any:
    import tensorflow as tf

    model = build_model()
    tf.train.Checkpoint(model=model).read(checkpoint).expect_partial()
    return model


def plain_save(model: Any, export_dir: Path) -> None:
    import tensorflow as tf

    serving = tf.function(
        lambda x: {"output": model({"x": x}, training=False)},
        input_signature=[tf.TensorSpec((None, INPUT_WIDTH), tf.float32, "x")],
    )
    tf.saved_model.save(model, str(export_dir), signatures=serving.get_concrete_function())


def timed(action: Callable[[Path], object], work: Path, name: str) -> float:
    export_dir = work / name
    start = time.perf_counter()
    action(export_dir)
    elapsed = time.perf_counter() - start
    shutil.rmtree(export_dir)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed rounds (at least 5)")
    runs = max(5, parser.parse_args().runs)

    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        work = Path(scratch)
        checkpoint, trained = write_checkpoint(work / "model_dir")
        variables_mb = sum(int(v.numpy().nbytes) for v in trained.weights) / 2**20
        plain_model = restored_model(checkpoint)
        actions: dict[str, Callable[[Path], object]] = {
            "single": lambda d: write_saved_model(DEFINITION, checkpoint, d),
            "multi": lambda d: write_saved_model(
                DEFINITION, checkpoint, d, modes=("train", "eval", "serve")
            ),
            "plain": lambda d: plain_save(plain_model, d),
        }
        for name, action in actions.items():
            timed(action, work, name)
        seconds: dict[str, list[float]] = {name: [] for name in actions}
        for _ in range(runs):
            for name, action in actions.items():
                seconds[name].append(timed(action, work, name))

    medians = {name: statistics.median(values) for name, values in seconds.items()}
    single_ratio = medians["single"] / medians["plain"]
    multi_ratio = medians["multi"] / medians["plain"]
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"model variables: {variables_mb:.1f} MB, {runs} timed rounds (+1 warm-up)")
    for name, values in seconds.items():
        print(f"{name:>6}: median {medians[name]:.3f} s  runs {[round(v, 3) for v in values]}")
    print(f"single/plain {single_ratio:.2f} (target <= {SINGLE_TARGET})")
    print(f" multi/plain {multi_ratio:.2f} (target <= {MULTI_TARGET})")
    print(
        json.dumps(
            {
                "single_over_plain": round(single_ratio, 3),
                "multi_over_plain": round(multi_ratio, 3),
                "plain_seconds": round(medians["plain"], 4),
                "single_seconds": round(medians["single"], 4),
                "multi_seconds": round(medians["multi"], 4),
                "peak_rss_mb": round(peak_rss_mb, 1),
                "variables_mb": round(variables_mb, 2),
                "runs": runs,
                "meets_targets": single_ratio <= SINGLE_TARGET and multi_ratio <= MULTI_TARGET,
            }
        )
    )


if __name__ == "__main__":
    main()
