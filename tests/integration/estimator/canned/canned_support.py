"""Shared by the canned estimator tests: the committed Estimator model_dirs and their references,
the canned graphs built for one mode, and sessions restored from the TF 2.15 checkpoints.

The graphs are built from `specs.py`, the same code that made the model_dirs with the real
tf.estimator: `specs.MODELS[name].build(tf, canned)` is the one-import migration.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[3] / "data" / "estimator"
if str(DATA) not in sys.path:
    sys.path.insert(0, str(DATA))

import specs  # noqa: E402

CANNED_MODELS = (
    "linear_classifier",
    "linear_regressor",
    "dnn_classifier",
    "dnn_regressor",
    "combined_classifier",
    "combined_regressor",
)
CHECKPOINT = "model.ckpt-150"
TOLERANCE = 1e-5


def reference(name: str) -> dict[str, Any]:
    return json.loads((DATA / name / "reference" / "outputs.json").read_text())


def copy_checkpoint(name: str, tmp_path: Path) -> str:
    """The model's newest checkpoint copied under tmp_path; its prefix."""
    target = tmp_path / name
    target.mkdir(parents=True)
    for path in (DATA / name / "model_dir").glob(f"{CHECKPOINT}.*"):
        shutil.copy(path, target / path.name)
    return str(target / CHECKPOINT)


def canned_estimator(name: str) -> Any:
    """The model's canned estimator, built by specs.py with `airflow_tf_export.estimator` in
    place of `tf.estimator`: the one-import migration."""
    import tensorflow as tf

    from airflow_tf_export import estimator

    return specs.MODELS[name].build(tf, estimator)


def serialized_examples(name: str) -> list[bytes]:
    return [base64.b64decode(s) for s in reference(name)["serialized_examples"]]


def supervised_values(name: str) -> dict[str, Any]:
    """The reference's 16 labelled examples as the train and eval signatures take them."""
    import tensorflow as tf

    spec = specs.MODELS[name]
    data, labels = specs.labelled(spec, 16, seed=reference(name)["labelled_seed"])
    values: dict[str, Any] = {}
    for key, parsing in spec.parse_spec(tf).items():
        shape = getattr(parsing, "shape", None)
        values[key] = data[key] if shape is None else data[key].reshape(-1, *shape)
    if spec.weight_column:
        values[spec.weight_column] = data[spec.weight_column]
    values["label"] = labels
    return values


@dataclass
class Built:
    """One mode's graph: the spec the model_fn returned and the receiver's inputs by key."""

    graph: Any
    spec: Any
    inputs: dict[str, Any]

    def feed(self, values: dict[str, Any]) -> dict[Any, Any]:
        return {self.inputs[key]: value for key, value in values.items()}


def build(name: str, mode: str) -> Built:
    """The canned graph of `name` for `mode` ("infer", "eval" or "train") in a new graph, fed
    by the estimator's default receivers, as an export builds it."""
    import tensorflow as tf

    estimator = canned_estimator(name)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.train.get_or_create_global_step()
        if mode == "infer":
            receiver = estimator.serving_input_receiver_fn()
            spec = estimator.model_fn(receiver.features, None, mode)
        else:
            receiver = estimator.supervised_input_receiver_fn()
            spec = estimator.model_fn(receiver.features, receiver.labels, mode)
    return Built(graph, spec, receiver.receiver_tensors)


@contextmanager
def restored(built: Built, checkpoint: str) -> Iterator[Any]:
    """A session on the built graph with every global variable restored by name from the
    checkpoint, lookup tables and metric variables initialized."""
    import tensorflow as tf

    with built.graph.as_default(), tf.compat.v1.Session(graph=built.graph) as session:
        tf.compat.v1.train.Saver(tf.compat.v1.global_variables()).restore(session, checkpoint)
        session.run([tf.compat.v1.tables_initializer(), tf.compat.v1.local_variables_initializer()])
        yield session


def max_difference(actual: Any, expected: Any) -> float:
    """The largest absolute difference of two numeric arrays of the same shape."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.max(np.abs(actual - expected))) if actual.size else 0.0


def as_text(value: Any) -> Any:
    """Strings (bytes from TensorFlow) as str, in nested lists like the reference JSON."""
    array = np.asarray(value)
    return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(
        array
    ).tolist()


def assert_matches(actual: Any, expected: Any, what: str) -> float:
    """Strings and integers equal, floats within TOLERANCE; the largest float difference."""
    array = np.asarray(actual)
    if array.dtype.kind in "SOU":
        assert as_text(actual) == expected, what
        return 0.0
    if array.dtype.kind in "iub":
        assert array.tolist() == expected, what
        return 0.0
    difference = max_difference(actual, expected)
    assert difference <= TOLERANCE, f"{what}: max abs difference {difference}"
    return difference


def write_all_modes(name: str, directory: Path) -> Path:
    """The canned estimator's train, eval and serve SavedModel of the copied checkpoint."""
    from airflow_tf_export.savedmodel import write_saved_model

    checkpoint = copy_checkpoint(name, directory)
    export_dir = directory / "export"
    write_saved_model(
        canned_estimator(name), checkpoint, export_dir, modes=("train", "eval", "serve")
    )
    return export_dir


def signature_structure(export_dir: Path, tag: str) -> dict[str, Any]:
    """Signature key -> method name, and each input and output key with its dtype and shape."""
    import tensorflow as tf

    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, [tag], str(export_dir))
        return {
            key: (
                signature.method_name,
                {k: (v.dtype, str(v.tensor_shape)) for k, v in sorted(signature.inputs.items())},
                {k: (v.dtype, str(v.tensor_shape)) for k, v in sorted(signature.outputs.items())},
            )
            for key, signature in meta.signature_def.items()
        }


def _signature_feed(graph: Any, signature: Any, values: dict[str, Any]) -> dict[Any, Any]:
    return {
        graph.get_tensor_by_name(info.name): values[key] for key, info in signature.inputs.items()
    }


def run_eval(export_dir: Path, values: dict[str, Any]) -> dict[str, Any]:
    """The eval signature, as generate.py ran the Estimator's: update ops, then the values."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["eval"], str(export_dir))
        signature = meta.signature_def["eval"]
        feed = _signature_feed(graph, signature, values)
        tensors = {k: graph.get_tensor_by_name(v.name) for k, v in signature.outputs.items()}
        ran = session.run({k: t for k, t in tensors.items() if not k.endswith("/value")}, feed)
        ran.update(session.run({k: t for k, t in tensors.items() if k.endswith("/value")}, feed))
        return ran


def run_train_step(
    export_dir: Path,
    values: dict[str, Any],
    *,
    start: dict[str, np.ndarray] | None = None,
    noise: tuple[list[np.ndarray], list[np.ndarray]] | None = None,
) -> tuple[float, dict[str, np.ndarray]]:
    """The train signature's loss, then one run of the train op; every variable after it.

    `start`: values loaded into the named variables first. `noise`, for a graph with
    dropout: the uniform noise fed into its dropout ops (first hidden layer first) for the
    loss run and for the train run.
    """
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["train"], str(export_dir))
        variables = tf.compat.v1.global_variables()
        for variable in variables:
            if start is not None and variable.op.name in start:
                variable.load(start[variable.op.name], session)
        signature = meta.signature_def["train"]
        feed = _signature_feed(graph, signature, values)
        runs = [dict(feed), dict(feed)]
        if noise is not None:
            for run, arrays in zip(runs, noise, strict=True):
                run.update(zip(_dropout_noise(graph), arrays, strict=True))
        loss = session.run(graph.get_tensor_by_name(signature.outputs["loss"].name), runs[0])
        (train_op,) = graph.get_collection("saved_model_train_op")
        session.run(train_op, runs[1])
        return float(loss), {v.op.name: session.run(v) for v in variables}


def _dropout_noise(graph: Any) -> list[Any]:
    """The uniform noise tensors of a graph's dropout ops, first hidden layer first."""
    ops = [
        op for op in graph.get_operations() if op.type == "RandomUniform" and "dropout" in op.name
    ]
    if not ops:
        raise AssertionError("noise given for a graph without dropout")
    return [op.outputs[0] for op in sorted(ops, key=lambda op: op.name)]
