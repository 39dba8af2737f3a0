"""Benchmark: exporting a checkpoint as a user runs it, against the same export by hand.

Two Keras MLPs, one with about 10 MB of float32 variables and one with about 100 MB, are
trained one step and checkpointed with tf.train.CheckpointManager (`ckpt-1` and the
`checkpoint` state file in a model dir on local disk). Each is exported in two kinds:
`single` (the serve mode) and `multi` (the train, eval and serve modes), by two sides:

  ours      export_checkpoint, the function the export operators and `airflow-tf-export
            export` run, with a Latest strategy: resolve the state file's checkpoint, scan
            the exporter dir, decide, build the model and restore the checkpoint (checked
            against the model first), trace the signatures, save, write the manifest
            (size and CRC32C of every file) and the metadata, flush everything to disk,
            publish the version by a rename, apply retention.
  by hand   what a user would otherwise write: build the model, restore the checkpoint the
            state file names with tf.train.Checkpoint(...).read(...).expect_partial(),
            trace the signatures, tf.saved_model.save into `<exporter dir>/<epoch seconds>`.
            single: the Keras model with one serving signature. multi: a tf.Module holding
            the model, its optimizer (restored) and a global step, with three signatures:
            `train` (one optimizer step on a batch, the step incremented, the loss),
            `eval` (loss and predictions) and `serving_default`, in one MetaGraphDef: TF2
            has no API that writes a MetaGraphDef per mode for a Keras 3 model; ours writes
            one per mode (train, eval, serve), which the multi figures include. The
            single root is the Keras model, as the TensorFlow guides save it; saving it
            costs a little more than saving only the variables the signatures use, as ours
            does (about 0.05 s of CPU at 10 MB here), and that is in the by-hand figures.

Before timing, both sides' SavedModels are loaded back and compared, and must agree: the
same saved variables (shapes and dtypes), the same serving outputs and eval loss on one
batch and the same loss from one train step (multi). What ours does beyond that (the checks,
the manifest, flushing to disk, the metadata, the scan and retention) is the overhead
measured.

Rounds are interleaved (see measuring.py): one warm-up call of each action, then every
round runs all of them, every other round in the reverse order; each side sits next to its
by-hand baseline. A ratio is the median over rounds of ours / by hand measured in the same
round (wall-clock; CPU seconds of every thread, which a shared machine disturbs less, are
shown too). Targets, at both sizes: single <= 1.1, multi <= 1.6. Also shown, without a
target: how each side's median grows from 10 MB to 100 MB (seconds per 100 MB of
variables), and each side's peak RSS, measured in its own subprocess (one export after the
imports; the RSS after the imports is shown beside it).

The last line printed is one JSON object; `meets_targets` is computed from the four paired
wall-clock ratios only. A full run takes about 4 minutes on 2 cores; `--quick` (3 rounds, no RSS
subprocesses) and `--sizes` are for development: such a run's `meets_targets` is false.

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_export.py [--runs 9] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from measuring import Action, Rounds, interleaved_rounds

from airflow_tf_export.savedmodel import Feature, ModelDefinition, RawServingInput, SupervisedInput

SINGLE = ("serve",)
MULTI = ("train", "eval", "serve")
KINDS = {"single": SINGLE, "multi": MULTI}
TARGETS = {"single": 1.1, "multi": 1.6}
SIDES = ("ours", "by_hand")
EXPORTER_NAME = "latest"
BATCH = 32


@dataclass(frozen=True)
class Size:
    """An MLP input_width -> hidden... -> 1."""

    input_width: int
    hidden: tuple[int, ...]


SIZES = {
    "10mb": Size(512, (2048, 768)),  # 2.6 M parameters, 10.5 MB
    "100mb": Size(2048, (8192, 1024)),  # 25.2 M parameters, 100.7 MB
}


def build_model(size: Size) -> Any:
    import keras

    inputs = keras.Input(shape=(size.input_width,), name="x")
    hidden = inputs
    for width in size.hidden:
        hidden = keras.layers.Dense(width, activation="relu")(hidden)
    return keras.Model({"x": inputs}, keras.layers.Dense(1)(hidden))


def mean_squared_error(labels: Any, outputs: Any) -> Any:
    import keras

    return keras.ops.mean(keras.ops.square(outputs[:, 0] - labels))


def make_optimizer() -> Any:
    import keras

    return keras.optimizers.SGD(learning_rate=0.01)


def definition_of(size: Size) -> ModelDefinition:
    features = {"x": Feature("float32", (size.input_width,))}
    return ModelDefinition(
        build_model=functools.partial(build_model, size),
        serving_input=RawServingInput(features),
        supervised_input=SupervisedInput(features, label=Feature("float32")),
        loss=mean_squared_error,
        make_optimizer=make_optimizer,
    )


def batch(size: Size) -> tuple[Any, Any]:
    """One batch of features and labels, the same on every call."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, size.input_width)).astype(np.float32)
    return x, rng.normal(size=(BATCH,)).astype(np.float32)


def write_model_dir(size: Size, model_dir: Path) -> float:
    """Train one step and save ckpt-1 with its state file; return the model's MB (2**20)."""
    import tensorflow as tf

    model, optimizer = build_model(size), make_optimizer()
    step = tf.Variable(0, dtype=tf.int64)
    x, y = batch(size)
    with tf.GradientTape() as tape:
        loss = mean_squared_error(y, model({"x": x}, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
    step.assign_add(1)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    tf.train.CheckpointManager(checkpoint, str(model_dir), max_to_keep=None).save(1)
    return sum(int(v.numpy().nbytes) for v in model.weights) / 2**20


def ours(
    definition: ModelDefinition, modes: tuple[str, ...], model_dir: Path, exporter: Path
) -> None:
    """export_checkpoint as `airflow-tf-export export --strategy latest` runs it."""
    from airflow_tf_export.core.strategies import LatestStrategy
    from airflow_tf_export.savedmodel.export_run import export_checkpoint, saved_model_writer
    from airflow_tf_export.storage import storage_for

    run = export_checkpoint(
        storage_for=storage_for,
        model_dir=str(model_dir),
        name=EXPORTER_NAME,
        strategy=LatestStrategy(name=EXPORTER_NAME),
        write=lambda storage: saved_model_writer(definition, storage, modes=modes),
        export_dir_base=str(exporter),
    )
    if not run.outcome.exported:
        raise SystemExit(f"ours did not export: {run.outcome.decision.reason}")


def by_hand(size: Size, modes: tuple[str, ...], model_dir: Path, exporter: Path) -> None:
    """The export written with TensorFlow's own API (see the module docstring)."""
    import tensorflow as tf

    checkpoint = tf.train.latest_checkpoint(str(model_dir))
    model = build_model(size)
    x_spec = tf.TensorSpec((None, size.input_width), tf.float32, "x")
    label_spec = tf.TensorSpec((None,), tf.float32, "label")

    def serve(x: Any) -> dict[str, Any]:
        return {"output": model({"x": x}, training=False)}

    if modes == SINGLE:
        tf.train.Checkpoint(model=model).read(checkpoint).expect_partial()
        root: Any = model
        signatures = {"serving_default": tf.function(serve, input_signature=[x_spec])}
    else:
        optimizer = make_optimizer()
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, name="global_step")
        restored = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
        restored.read(checkpoint).expect_partial()

        def train(x: Any, label: Any) -> dict[str, Any]:
            with tf.GradientTape() as tape:
                loss = mean_squared_error(label, model({"x": x}, training=True))
            variables = model.trainable_variables
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            step.assign_add(1)
            return {"loss": loss}

        def evaluate(x: Any, label: Any) -> dict[str, Any]:
            outputs = model({"x": x}, training=False)
            return {"loss": mean_squared_error(label, outputs), "predictions/output": outputs}

        root = tf.Module()
        root.model, root.optimizer, root.step = model, optimizer, step
        signatures = {
            "train": tf.function(train, input_signature=[x_spec, label_spec]),
            "eval": tf.function(evaluate, input_signature=[x_spec, label_spec]),
            "serving_default": tf.function(serve, input_signature=[x_spec]),
        }
    tf.saved_model.save(root, str(exporter / str(int(time.time()))), signatures=signatures)


def _version_dir(exporter: Path) -> Path:
    (version,) = [p for p in exporter.iterdir() if p.name.isdigit()]
    return version


def _saved_variables(version: Path) -> list[tuple[list[int], str]]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(version / "variables" / "variables"))
    dtypes = reader.get_variable_to_dtype_map()
    return sorted(
        (shape, dtypes[name].name)
        for name, shape in reader.get_variable_to_shape_map().items()
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    )


def _signatures(version: Path, tags: tuple[str, ...] | None) -> dict[str, Any]:
    """Signature key -> function, of every MetaGraphDef (ours: one per tag)."""
    import tensorflow as tf

    if tags is None:
        return dict(tf.saved_model.load(str(version)).signatures)
    found = {}
    for tag in tags:
        found.update(tf.saved_model.load(str(version), tags=[tag]).signatures)
    return found


def _only_value(outputs: dict[str, Any], prefix: str = "") -> Any:
    (value,) = [v for key, v in outputs.items() if key.startswith(prefix)]
    return value.numpy()


def check_same_work(size: Size, definition: ModelDefinition, kind: str, work: Path) -> str:
    """Both sides' SavedModels, loaded back and compared; a summary of what they hold."""
    import numpy as np
    import tensorflow as tf

    modes = KINDS[kind]
    model_dir = work / "model_dir"
    ours_exporter, their_exporter = work / f"check-{kind}-ours", work / f"check-{kind}-by-hand"
    ours(definition, modes, model_dir, ours_exporter)
    by_hand(size, modes, model_dir, their_exporter)
    mine, theirs = _version_dir(ours_exporter), _version_dir(their_exporter)
    variables = _saved_variables(mine)
    if variables != _saved_variables(theirs):
        raise SystemExit(f"not the same work ({kind}): the saved variables differ")
    ours_signatures = _signatures(mine, modes if kind == "multi" else None)
    their_signatures = _signatures(theirs, None)
    x, y = batch(size)
    x_tensor, y_tensor = tf.constant(x), tf.constant(y)
    compared = {
        "serving output": (
            _only_value(ours_signatures["serving_default"](x=x_tensor)),
            _only_value(their_signatures["serving_default"](x=x_tensor)),
        )
    }
    if kind == "multi":
        supervised = {"x": x_tensor, "label": y_tensor}
        compared["eval loss"] = (
            _only_value(ours_signatures["eval"](**supervised), "loss"),
            _only_value(their_signatures["eval"](**supervised), "loss"),
        )
        compared["train loss"] = (
            _only_value(ours_signatures["train"](**supervised), "loss"),
            _only_value(their_signatures["train"](**supervised), "loss"),
        )
    for what, (a, b) in compared.items():
        if not np.allclose(a, b, rtol=1e-5, atol=1e-6):
            raise SystemExit(f"not the same work ({kind}): the {what} differs: {a} vs {b}")
    data_mb = sum(p.stat().st_size for p in (mine / "variables").iterdir()) / 2**20
    shutil.rmtree(ours_exporter)
    shutil.rmtree(their_exporter)
    return (
        f"{len(variables)} variables ({data_mb:.1f} MB), the same {', '.join(compared)}; "
        f"signatures {sorted(their_signatures)}"
    )


def action_of(side: str, size_name: str, kind: str, model_dir: Path) -> Action:
    size, modes = SIZES[size_name], KINDS[kind]
    if side == "ours":
        return functools.partial(ours, definition_of(size), modes, model_dir)
    return functools.partial(by_hand, size, modes, model_dir)


def peak_rss(side: str, size_name: str, kind: str, model_dir: Path) -> dict[str, float]:
    """The peak RSS (MB) of a fresh process running one export of `side`, and its RSS
    after the imports (TensorFlow and Keras)."""
    command = [sys.executable, __file__, "--rss-of", side, size_name, kind, str(model_dir)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _peak_rss_mb() -> float:
    """This process's peak RSS (MB) from /proc/self/status (Linux): getrusage's ru_maxrss
    would report the parent's if it was larger when the parent forked this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status: peak RSS is measured on Linux only")


def rss_of_one_export(side: str, size_name: str, kind: str, model_dir: str) -> None:
    """Run in the subprocess `peak_rss` starts: print the two RSS figures as JSON."""
    import keras  # noqa: F401
    import tensorflow as tf  # noqa: F401

    after_imports = _peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="bench-export-rss-") as scratch:
        action_of(side, size_name, kind, Path(model_dir))(Path(scratch) / "exporter")
    print(
        json.dumps(
            {"after_imports_mb": round(after_imports, 1), "peak_mb": round(_peak_rss_mb(), 1)}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="timed rounds (at least 3)")
    parser.add_argument(
        "--sizes", nargs="+", choices=list(SIZES), default=list(SIZES), help="model sizes"
    )
    parser.add_argument("--quick", action="store_true", help="development: 3 rounds, no RSS")
    parser.add_argument("--rss-of", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_of:
        rss_of_one_export(*args.rss_of)
        return
    runs = 3 if args.quick else max(3, args.runs)
    size_names = [name for name in SIZES if name in args.sizes]
    import absl.logging
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    # Loading a SavedModel back warns about the train step's custom gradients (not saved).
    absl.logging.set_verbosity(absl.logging.ERROR)

    variables_mb: dict[str, float] = {}
    actions: dict[str, Action] = {}
    rss: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        work = Path(scratch)
        for size_name in size_names:
            size, model_dir = SIZES[size_name], work / size_name / "model_dir"
            variables_mb[size_name] = write_model_dir(size, model_dir)
            for kind in KINDS:
                same = check_same_work(size, definition_of(size), kind, work / size_name)
                print(f"{size_name} {kind} ({variables_mb[size_name]:.1f} MB), both sides: {same}")
                for side in SIDES:
                    actions[f"{size_name} {kind} {side}"] = action_of(
                        side, size_name, kind, model_dir
                    )
        rounds = interleaved_rounds(actions, work, runs)
        if not args.quick:
            for name in actions:
                size_name, kind, side = name.split()
                rss[name] = peak_rss(side, size_name, kind, work / size_name / "model_dir")
    report(rounds, size_names, variables_mb, rss, runs)


def report(
    rounds: Rounds,
    size_names: list[str],
    variables_mb: dict[str, float],
    rss: dict[str, dict[str, float]],
    runs: int,
) -> None:
    """Print every figure, then the JSON line."""
    print(f"{runs} timed rounds (+1 warm-up), interleaved; median seconds wall-clock (CPU)")
    for name, values in rounds.wall.items():
        memory = f"  peak RSS {rss[name]['peak_mb']:.0f} MB" if name in rss else ""
        print(
            f"{name:>20}: {rounds.median(name):.3f} ({rounds.median(name, cpu=True):.3f})"
            f"{memory}  runs {[round(v, 3) for v in values]}"
        )
    ratios: dict[str, float] = {}
    cpu_ratios: dict[str, float] = {}
    for size_name in size_names:
        for kind, target in TARGETS.items():
            key = f"{kind}_over_by_hand_{size_name}"
            ours_name, theirs_name = f"{size_name} {kind} ours", f"{size_name} {kind} by_hand"
            ratios[key] = rounds.paired(ours_name, theirs_name)
            cpu_ratios[key] = rounds.paired(ours_name, theirs_name, cpu=True)
            print(
                f"{key}: {ratios[key]:.3f} (target <= {target}; CPU {cpu_ratios[key]:.3f}, "
                f"ratio of medians {rounds.median(ours_name) / rounds.median(theirs_name):.3f})"
            )
    growth: dict[str, float] = {}
    if len(size_names) == 2:
        small, large = size_names
        per_100mb = 100 / (variables_mb[large] - variables_mb[small])
        for kind in KINDS:
            for side in SIDES:
                grown = rounds.median(f"{large} {kind} {side}") - rounds.median(
                    f"{small} {kind} {side}"
                )
                growth[f"{kind}_{side}"] = grown * per_100mb
            print(
                f"{kind}: seconds per 100 MB of variables, ours {growth[f'{kind}_ours']:.3f}, "
                f"by hand {growth[f'{kind}_by_hand']:.3f} (no target)"
            )
    complete = len(size_names) == len(SIZES) and bool(rss)
    meets = all(ratio <= TARGETS[key.split("_")[0]] for key, ratio in ratios.items())
    print(
        json.dumps(
            {
                **{key: round(value, 3) for key, value in ratios.items()},
                "cpu_ratios": {key: round(value, 3) for key, value in cpu_ratios.items()},
                "seconds": {name: round(rounds.median(name), 4) for name in rounds.wall},
                "seconds_per_100mb": {key: round(value, 4) for key, value in growth.items()},
                "peak_rss_mb": {name: figures["peak_mb"] for name, figures in rss.items()},
                "rss_after_imports_mb": {
                    name: figures["after_imports_mb"] for name, figures in rss.items()
                },
                "variables_mb": {key: round(value, 2) for key, value in variables_mb.items()},
                "runs": runs,
                "complete": complete,
                "meets_targets": meets and complete,
            }
        )
    )


if __name__ == "__main__":
    main()
