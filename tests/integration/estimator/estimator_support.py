"""Shared pieces of the Estimator export tests: the committed Estimator data of the custom
model_fn, its definition built with this package, and running SavedModels as generate.py
ran the Estimator's own exports (tests/data/estimator/generate.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "data" / "estimator"
CUSTOM = DATA / "custom_model_fn"
# specs.py imports custom_model.py from its own folder, as generate.py runs them.
if str(DATA) not in sys.path:
    sys.path.insert(0, str(DATA))

import specs  # noqa: E402

from airflow_tf_export.storage.base import WrittenModel  # noqa: E402

SPEC = specs.MODELS["custom_model_fn"]
CHECKPOINT_NAME = "model.ckpt-150"
TOLERANCE = 1e-5


@dataclass(frozen=True)
class Export:
    """A SavedModel a test wrote and what write_saved_model reported."""

    path: Path
    written: WrittenModel


def reference() -> dict[str, Any]:
    """What the real Estimator computed (reference/outputs.json)."""
    return json.loads((CUSTOM / "reference" / "outputs.json").read_text())


def serialized_examples() -> list[bytes]:
    return [base64.b64decode(text) for text in reference()["serialized_examples"]]


def all_modes_reference_dir() -> Path:
    """The Estimator's own experimental_export_all_saved_models export."""
    return CUSTOM / reference()["all_modes_export"]


def supervised_receiver_fn(tf: Any, estimator: Any) -> Any:
    """Raw placeholders per parsed feature and the label, as generate.py built them."""
    with tf.Graph().as_default():
        features = {}
        for name, parsing in SPEC.parse_spec(tf).items():
            shape = [None, *parsing.shape] if hasattr(parsing, "shape") else [None]
            features[name] = tf.compat.v1.placeholder(parsing.dtype, shape, name=name)
        label = tf.compat.v1.placeholder(
            tf.as_dtype(SPEC.label_dtype), [None, *SPEC.label_shape], name="label"
        )
    return estimator.experimental.build_raw_supervised_input_receiver_fn(features, label)


def build_definition(**overrides: Any) -> Any:
    """The custom model_fn's Estimator with the receivers generate.py exported it with."""
    import tensorflow as tf

    from airflow_tf_export import estimator

    receivers = {
        "serving_input_receiver_fn": estimator.export.build_parsing_serving_input_receiver_fn(
            SPEC.parse_spec(tf)
        ),
        "supervised_input_receiver_fn": supervised_receiver_fn(tf, estimator),
    }
    return SPEC.build(tf, estimator, **{**receivers, **overrides})


def labelled_feed_values() -> dict[str, Any]:
    """The 16 labelled examples of reference["eval"] / ["train"] by signature input key."""
    import tensorflow as tf

    data, labels = specs.labelled(SPEC, 16, seed=11)
    values: dict[str, Any] = {}
    for name, parsing in SPEC.parse_spec(tf).items():
        shape = getattr(parsing, "shape", None)
        values[name] = data[name] if shape is None else data[name].reshape(-1, *shape)
    values["label"] = labels
    return values


def jsonable(value: Any) -> Any:
    array = np.asarray(value)
    if array.dtype == object or array.dtype.kind == "S":
        return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v)(array).tolist()
    return array.tolist()


def assert_matches(got: Any, expected: Any, what: str) -> None:
    """Numbers within TOLERANCE, strings equal, same shapes."""
    got_array, expected_array = np.asarray(jsonable(got)), np.asarray(expected)
    assert got_array.shape == expected_array.shape, what
    if expected_array.dtype.kind in "iuf":
        difference = np.max(np.abs(got_array - expected_array), initial=0.0)
        assert difference <= TOLERANCE, f"{what}: max abs difference {difference}"
    else:
        assert got_array.tolist() == expected_array.tolist(), what


def run_serving_v1(export_dir: Path, serialized: list[bytes]) -> dict[str, dict[str, Any]]:
    """Every serve signature run in a tf.compat.v1 session on serialized examples."""
    import tensorflow as tf

    outputs: dict[str, dict[str, Any]] = {}
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(export_dir))
        for key, signature in meta.signature_def.items():
            (input_info,) = signature.inputs.values()
            fetches = {
                name: graph.get_tensor_by_name(info.name)
                for name, info in signature.outputs.items()
            }
            feed = {graph.get_tensor_by_name(input_info.name): serialized}
            outputs[key] = session.run(fetches, feed)
    return outputs


def feed(graph: Any, inputs: Mapping[str, Any], values: Mapping[str, Any]) -> dict[Any, Any]:
    return {graph.get_tensor_by_name(info.name): values[key] for key, info in inputs.items()}


def run_eval(export_dir: Path) -> dict[str, Any]:
    """The eval signature on the 16 labelled examples: update ops first, then the values."""
    import tensorflow as tf

    values = labelled_feed_values()
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["eval"], str(export_dir))
        signature = meta.signature_def["eval"]
        fed = feed(graph, signature.inputs, values)
        outputs = signature.outputs
        first = {k: v for k, v in outputs.items() if not k.endswith("/value")}
        second = {k: v for k, v in outputs.items() if k.endswith("/value")}
        ran = session.run({k: graph.get_tensor_by_name(v.name) for k, v in first.items()}, fed)
        ran.update(
            session.run({k: graph.get_tensor_by_name(v.name) for k, v in second.items()}, fed)
        )
    return ran


def run_train_step(export_dir: Path) -> tuple[Any, dict[str, Any]]:
    """One run of the train op on the labelled examples: the loss before, every global
    variable after."""
    import tensorflow as tf

    values = labelled_feed_values()
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["train"], str(export_dir))
        signature = meta.signature_def["train"]
        fed = feed(graph, signature.inputs, values)
        loss = session.run(graph.get_tensor_by_name(signature.outputs["loss"].name), fed)
        (train_op,) = graph.get_collection("saved_model_train_op")
        session.run(train_op, fed)
        variables = {v.op.name: session.run(v) for v in tf.compat.v1.global_variables()}
    return loss, variables


def file_digests(directory: Path) -> dict[str, str]:
    """sha256 of every file under `directory`, by relative path."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }
