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
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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


@dataclass
class _Spec:
    """Stands in for `airflow_tf_export.estimator.EstimatorSpec` until the base package lands:
    the same fields, kept as given."""

    mode: str
    predictions: Any = None
    loss: Any = None
    train_op: Any = None
    eval_metric_ops: Any = None
    export_outputs: Any = None


@dataclass
class _Output:
    """Stands in for the `estimator.export` outputs: the signature's output tensors by key."""

    outputs: dict[str, Any] = field(default_factory=dict)


# The estimator module the model_fn is given: until the base package lands, a stand-in with
# tf.estimator's ModeKeys, EstimatorSpec and export outputs that records what it is given.
ESTIMATOR = types.SimpleNamespace(
    ModeKeys=types.SimpleNamespace(TRAIN="train", EVAL="eval", PREDICT="infer"),
    EstimatorSpec=_Spec,
    export=types.SimpleNamespace(
        ClassificationOutput=lambda scores=None, classes=None: _Output(
            {k: v for k, v in {"scores": scores, "classes": classes}.items() if v is not None}
        ),
        RegressionOutput=lambda value: _Output({"outputs": value}),
        PredictOutput=lambda outputs: _Output(dict(outputs)),
    ),
)


def reference(name: str) -> dict[str, Any]:
    return json.loads((DATA / name / "reference" / "outputs.json").read_text())


def copy_checkpoint(name: str, tmp_path: Path) -> str:
    """The model's newest checkpoint copied under tmp_path; its prefix."""
    target = tmp_path / name
    target.mkdir(parents=True)
    for path in (DATA / name / "model_dir").glob(f"{CHECKPOINT}.*"):
        shutil.copy(path, target / path.name)
    return str(target / CHECKPOINT)


def canned_model(name: str) -> Any:
    """The model's CannedModel, built by specs.py with this package's canned estimators."""
    import tensorflow as tf

    from airflow_tf_export.estimator import canned

    return specs.MODELS[name].build(tf, canned).canned_model


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
    """One mode's graph: the spec the model_fn returned and the placeholders to feed."""

    graph: Any
    spec: _Spec
    inputs: dict[str, Any]

    def feed(self, values: dict[str, Any]) -> dict[Any, Any]:
        return {self.inputs[key]: value for key, value in values.items()}


def build(name: str, mode: str) -> Built:
    """The canned graph of `name` for `mode` ("infer", "eval" or "train") in a new graph: for
    "infer" it parses serialized tf.Examples, for the others it takes raw supervised inputs
    (what tests/data/estimator/generate.py fed the Estimator's own export)."""
    import tensorflow as tf

    spec = specs.MODELS[name]
    model = canned_model(name)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.train.get_or_create_global_step()
        if mode == "infer":
            examples = tf.compat.v1.placeholder(tf.string, [None], name="input_example_tensor")
            features = tf.io.parse_example(examples, spec.parse_spec(tf))
            return Built(
                graph, model.model_fn(features, None, mode, ESTIMATOR), {"examples": examples}
            )
        inputs = {}
        for key, parsing in spec.parse_spec(tf).items():
            shape = [None, *parsing.shape] if hasattr(parsing, "shape") else [None]
            inputs[key] = tf.compat.v1.placeholder(parsing.dtype, shape, name=key)
        if spec.weight_column:
            inputs[spec.weight_column] = tf.compat.v1.placeholder(tf.float32, [None])
        label = tf.compat.v1.placeholder(
            tf.as_dtype(spec.label_dtype), [None, *spec.label_shape], name="label"
        )
        features = {key: tensor for key, tensor in inputs.items()}
        built = model.model_fn(features, label, mode, ESTIMATOR)
        return Built(graph, built, {**inputs, "label": label})


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
