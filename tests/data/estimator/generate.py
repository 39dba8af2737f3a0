"""Build this folder's Estimator model_dirs with the real tf.estimator (TensorFlow 2.15).

Run it with TensorFlow 2.15.1 and tensorflow-estimator 2.15.0, in a Python 3.11 venv of
its own (they cannot be installed beside Airflow 3.3 and TensorFlow 2.21); README.md says
how. For every model of specs.MODELS it writes `<name>/model_dir/` as train_and_evaluate
would have left it (TF1 checkpoints, eval event files, the exports of a best, a latest and
a final exporter called after every evaluation), and `<name>/reference/`: what the tests
compare this package's exports with (the exporters' decisions, predictions of the
Estimator and of its serving export on fixed examples, and a multi-mode export with what
its train and eval graphs compute).
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# custom_model.py imports `estimator` from this package, as migrated code does; here the
# real tf.estimator stands in for it.
_package = types.ModuleType("airflow_tf_export")
_package.estimator = tf.estimator  # type: ignore[attr-defined]
sys.modules["airflow_tf_export"] = _package
sys.modules["airflow_tf_export.estimator"] = tf.estimator

import specs  # noqa: E402

ROUNDS = 6
STEPS_PER_ROUND = 25
RESTART_BEFORE_ROUND = 4  # a new BestExporter, as after a process restart
# Rounds trained on shuffled labels (drifted data): their evaluation is worse than the best
# so far, so the exporters have something to skip (and, after the restart, tf.estimator's
# BestExporter exports a worse model: tensorflow/tensorflow#47396).
DRIFTED_ROUNDS = (2, 4)
BATCH = 32
SEED = 42


def _dataset(data: dict[str, np.ndarray], labels: np.ndarray | None, *, train: bool) -> Any:
    tensors = {name: tf.constant(list(v) if v.dtype == object else v) for name, v in data.items()}
    items = (tensors,) if labels is None else (tensors, _tensor(labels))
    dataset = tf.data.Dataset.from_tensor_slices(items[0] if labels is None else items)
    if train:
        dataset = dataset.shuffle(len(labels), seed=SEED).repeat()
    return dataset.batch(BATCH if train else len(data["age"]))


def _tensor(values: np.ndarray) -> Any:
    return tf.constant(values.tolist() if values.dtype == object else values)


def _batch(data: dict[str, np.ndarray]) -> Any:
    return tf.data.Dataset.from_tensors({name: _tensor(values) for name, values in data.items()})


def _jsonable(value: Any) -> Any:
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind == "S":
        return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v)(array).tolist()
    return array.tolist()


def _supervised_receiver(spec: specs.ModelSpec) -> Any:
    """Raw placeholders for every parsed feature (one value per example for sparse ones),
    the weight column and the label: the train and eval signatures' inputs."""
    with tf.Graph().as_default():
        features = {}
        for name, parsing in spec.parse_spec(tf).items():
            shape = [None, *parsing.shape] if hasattr(parsing, "shape") else [None]
            features[name] = tf.compat.v1.placeholder(parsing.dtype, shape, name=name)
        if spec.weight_column:
            features[spec.weight_column] = tf.compat.v1.placeholder(tf.float32, [None])
        label = tf.compat.v1.placeholder(
            tf.as_dtype(spec.label_dtype), [None, *spec.label_shape], name="label"
        )
    return tf.estimator.experimental.build_raw_supervised_input_receiver_fn(features, label)


def _feed(graph: Any, inputs: Any, values: dict[str, Any]) -> dict[Any, Any]:
    return {graph.get_tensor_by_name(info.name): values[key] for key, info in inputs.items()}


def _supervised_values(spec: specs.ModelSpec, data: dict[str, np.ndarray], labels: Any) -> dict:
    """Feeds for the supervised receiver: parsed features in their parsed shapes."""
    values: dict[str, Any] = {}
    for name, parsing in spec.parse_spec(tf).items():
        shape = getattr(parsing, "shape", None)
        values[name] = data[name] if shape is None else data[name].reshape(-1, *shape)
    if spec.weight_column:
        values[spec.weight_column] = data[spec.weight_column]
    values["label"] = labels
    return values


def _run_serving(export_dir: str, serialized: list[bytes]) -> dict[str, dict[str, Any]]:
    """Every serving signature of an export, run on serialized examples."""
    outputs: dict[str, dict[str, Any]] = {}
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        for key, signature in sorted(meta.signature_def.items()):
            (input_info,) = signature.inputs.values()
            fetches = {
                name: graph.get_tensor_by_name(info.name)
                for name, info in signature.outputs.items()
            }
            result = session.run(fetches, {graph.get_tensor_by_name(input_info.name): serialized})
            outputs[key] = {name: _jsonable(value) for name, value in result.items()}
    return outputs


def _run_eval(export_dir: str, values: dict[str, Any]) -> dict[str, Any]:
    """The eval signature on labelled examples: update ops first, then the metric values."""
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["eval"], export_dir)
        signature = meta.signature_def["eval"]
        feed = _feed(graph, signature.inputs, values)
        first = {k: v for k, v in signature.outputs.items() if not k.endswith("/value")}
        second = {k: v for k, v in signature.outputs.items() if k.endswith("/value")}
        ran = session.run({k: graph.get_tensor_by_name(v.name) for k, v in first.items()}, feed)
        ran.update(
            session.run({k: graph.get_tensor_by_name(v.name) for k, v in second.items()}, feed)
        )
        return {
            "inputs": sorted(signature.inputs),
            "outputs": {k: _jsonable(v) for k, v in sorted(ran.items())},
        }


def _run_train(export_dir: str, values: dict[str, Any]) -> dict[str, Any]:
    """One step of the train graph's train op; the loss before it, the variables after."""
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["train"], export_dir)
        signature = meta.signature_def["train"]
        feed = _feed(graph, signature.inputs, values)
        loss = session.run(graph.get_tensor_by_name(signature.outputs["loss"].name), feed)
        (train_op,) = graph.get_collection("saved_model_train_op")
        session.run(train_op, feed)
        variables = {v.op.name: _jsonable(session.run(v)) for v in tf.compat.v1.global_variables()}
        return {
            "inputs": sorted(signature.inputs),
            "outputs": sorted(signature.outputs),
            "loss_before_step": _jsonable(loss),
            "variables_after_step": variables,
        }


def generate(spec: specs.ModelSpec) -> None:
    out = HERE / spec.name
    shutil.rmtree(out, ignore_errors=True)
    model_dir = out / "model_dir"
    reference = out / "reference"
    reference.mkdir(parents=True)
    config = tf.estimator.RunConfig(
        model_dir=str(model_dir), tf_random_seed=SEED, keep_checkpoint_max=3
    )
    est = spec.build(tf, tf.estimator, config=config)
    eval_data, eval_labels = specs.labelled(spec, 128, seed=2)
    serving_fn = tf.estimator.export.build_parsing_serving_input_receiver_fn(spec.parse_spec(tf))

    def best_exporter() -> Any:
        return tf.estimator.BestExporter(
            name="best", serving_input_receiver_fn=serving_fn, exports_to_keep=2
        )

    exporters = {
        "best": best_exporter(),
        "latest": tf.estimator.LatestExporter("latest", serving_fn, exports_to_keep=2),
        "final": tf.estimator.FinalExporter("final", serving_fn),
    }
    decisions = []
    for round_index in range(ROUNDS):
        restart = round_index == RESTART_BEFORE_ROUND
        if restart:
            exporters["best"] = best_exporter()
        train_data, train_labels = specs.labelled(spec, 512, seed=100 + round_index)
        if round_index in DRIFTED_ROUNDS:
            train_labels = np.random.RandomState(round_index).permutation(train_labels)
        est.train(
            functools.partial(_dataset, train_data, train_labels, train=True),
            steps=STEPS_PER_ROUND,
        )
        metrics = est.evaluate(lambda: _dataset(eval_data, eval_labels, train=False), steps=1)
        checkpoint = est.latest_checkpoint()
        decision: dict[str, Any] = {
            "step": int(metrics["global_step"]),
            "checkpoint": os.path.basename(checkpoint),
            "loss": float(metrics["loss"]),
            "exporter_restarted": restart,
        }
        for name, exporter in exporters.items():
            path = exporter.export(
                est,
                str(model_dir / "export" / name),
                checkpoint,
                metrics,
                round_index == ROUNDS - 1,
            )
            decision[name] = None if path is None else os.path.basename(os.fsdecode(path))
        decisions.append(decision)
        print(spec.name, decision, flush=True)

    examples = specs.features(8, seed=9)
    serialized = specs.serialized_examples(tf, examples)
    predicted = list(est.predict(functools.partial(_batch, examples)))
    latest_dir = model_dir / "export" / "latest" / decisions[-1]["latest"]
    all_modes = est.experimental_export_all_saved_models(
        str(reference / "all_modes"),
        {
            tf.estimator.ModeKeys.TRAIN: _supervised_receiver(spec),
            tf.estimator.ModeKeys.EVAL: _supervised_receiver(spec),
            tf.estimator.ModeKeys.PREDICT: serving_fn,
        },
    )
    labelled_data, labelled_labels = specs.labelled(spec, 16, seed=11)
    values = _supervised_values(spec, labelled_data, labelled_labels)
    record = {
        "tensorflow": tf.__version__,
        "checkpoint": decisions[-1]["checkpoint"],
        "step": decisions[-1]["step"],
        "serialized_examples": [base64.b64encode(s).decode() for s in serialized],
        "predict": [{k: _jsonable(v) for k, v in sorted(p.items())} for p in predicted],
        "serving_export": str(latest_dir.relative_to(out)),
        "serving": _run_serving(str(latest_dir), serialized),
        "all_modes_export": str(Path(os.fsdecode(all_modes)).relative_to(out)),
        "labelled_seed": 11,
        "labelled_count": 16,
        "eval": _run_eval(os.fsdecode(all_modes), values),
        "train": _run_train(os.fsdecode(all_modes), values),
        "variables": {name: list(shape) for name, shape in tf.train.list_variables(str(model_dir))},
    }
    # Unused by this package and large (the training graph, once per train() call, and as
    # text): not kept.
    for events in [*model_dir.glob("events.out.tfevents.*"), model_dir / "graph.pbtxt"]:
        events.unlink()
    (reference / "decisions.json").write_text(json.dumps(decisions, indent=1) + "\n")
    (reference / "outputs.json").write_text(json.dumps(record, indent=1) + "\n")


def main(names: list[str]) -> None:
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    for name in names or list(specs.MODELS):
        generate(specs.MODELS[name])


if __name__ == "__main__":
    main(sys.argv[1:])
