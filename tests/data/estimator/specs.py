"""The Estimator model_dirs of this folder: their models, data and receivers, in one place.

This module runs on both sides of the migration: `generate.py` calls it under TensorFlow
2.15 with `tf.estimator` to train the real Estimator, and the tests call it under
TensorFlow 2.21 with `airflow_tf_export.estimator` to export the same checkpoints. Every
builder takes the TensorFlow module and the estimator module as arguments, so both sides
construct the models with the same code and only the estimator module differs: the one
import a migrating user changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
VOCAB_FILE = HERE / "vocab" / "colors.txt"
LANGUAGES = ("en", "fr", "de")
HOURS = 24


def feature_columns(tf: Any) -> dict[str, Any]:
    """Every kind of feature column the canned estimators take, by name."""
    fc = tf.feature_column
    age = fc.numeric_column("age")
    # Ages are 18..80: unscaled, they saturate the ReLU layers of the DNNs.
    age_scaled = fc.numeric_column("age", normalizer_fn=lambda value: (value - 45.0) / 15.0)
    x = fc.numeric_column("x", shape=(2,))
    language = fc.categorical_column_with_vocabulary_list("language", LANGUAGES)
    color = fc.categorical_column_with_vocabulary_file(
        "color", str(VOCAB_FILE), vocabulary_size=3, num_oov_buckets=1
    )
    hour = fc.categorical_column_with_identity("hour", num_buckets=HOURS)
    user = fc.categorical_column_with_hash_bucket("user", hash_bucket_size=20)
    age_buckets = fc.bucketized_column(age, boundaries=[25.0, 35.0, 50.0, 65.0])
    return {
        "age": age,
        "age_scaled": age_scaled,
        "x": x,
        "language": language,
        "color": color,
        "hour": hour,
        "user": user,
        "age_buckets": age_buckets,
        "age_x_language": fc.crossed_column([age_buckets, "language"], hash_bucket_size=16),
        "language_embedding": fc.embedding_column(language, dimension=3),
        "color_embedding": fc.embedding_column(color, dimension=2),
        "hour_indicator": fc.indicator_column(hour),
        "user_indicator": fc.indicator_column(user),
    }


@dataclass(frozen=True)
class ModelSpec:
    """One model_dir: the canned estimator class (None: the custom model_fn), its feature
    column arguments, its other arguments, and its labels."""

    name: str
    estimator_class: str | None
    columns: Callable[[dict[str, Any]], dict[str, list[Any]]]
    options: Callable[[Any], dict[str, Any]]
    label: Callable[[Mapping[str, np.ndarray], np.random.RandomState], np.ndarray]
    label_dtype: str
    label_shape: tuple[int, ...] = ()
    weight_column: str | None = None

    def build(self, tf: Any, estimator: Any, **extra: Any) -> Any:
        """The estimator (or, for the custom model_fn, `Estimator`) of this model."""
        arguments = {**self.columns(feature_columns(tf)), **self.options(tf), **extra}
        if self.weight_column is not None:
            arguments["weight_column"] = self.weight_column
        if self.estimator_class is None:
            from custom_model import model_fn

            params = {key: arguments.pop(key) for key in ("feature_columns", "hidden_units")}
            return estimator.Estimator(model_fn=model_fn, params=params, **arguments)
        return getattr(estimator, self.estimator_class)(**arguments)

    def used_columns(self, tf: Any) -> list[Any]:
        """Every feature column the model reads."""
        return [c for group in self.columns(feature_columns(tf)).values() for c in group]

    def parse_spec(self, tf: Any) -> dict[str, Any]:
        """The tf.Example parsing spec of the model's features (the serving input)."""
        return tf.feature_column.make_parse_example_spec(self.used_columns(tf))


def _binary(features: Mapping[str, np.ndarray], rng: np.random.RandomState) -> np.ndarray:
    score = (features["age"] - 45.0) / 12.0 + np.where(features["language"] == "fr", 1.5, -0.3)
    noise = rng.logistic(size=score.shape)
    return (score + noise > 0).astype(np.int64)


def _three_classes(features: Mapping[str, np.ndarray], rng: np.random.RandomState) -> np.ndarray:
    score = (features["age"] - 45.0) / 10.0 + (features["hour"] - 12) / 8.0
    score = score + rng.normal(scale=0.7, size=score.shape)
    return np.where(score < -0.7, "low", np.where(score < 0.7, "mid", "high")).astype(object)


def _regression(features: Mapping[str, np.ndarray], rng: np.random.RandomState) -> np.ndarray:
    value = 0.05 * features["age"] + features["x"][:, 0] - 0.5 * features["x"][:, 1]
    return (value + rng.normal(scale=0.2, size=value.shape)).astype(np.float32)


def _two_targets(features: Mapping[str, np.ndarray], rng: np.random.RandomState) -> np.ndarray:
    first = _regression(features, rng)
    second = np.where(features["color"] == "red", 1.0, -1.0) + 0.3 * features["x"][:, 1]
    return np.stack([first, second.astype(np.float32)], axis=1).astype(np.float32)


def _none(tf: Any) -> dict[str, Any]:
    return {}


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "linear_classifier",
            "LinearClassifier",
            lambda c: {"feature_columns": [c["age"], c["language"]]},
            _none,
            _binary,
            "int64",
        ),
        ModelSpec(
            "linear_regressor",
            "LinearRegressor",
            lambda c: {
                "feature_columns": [
                    c["x"],
                    c["age_buckets"],
                    c["age_x_language"],
                    c["user"],
                    c["color"],
                ]
            },
            lambda tf: {"optimizer": "Adam"},
            _regression,
            "float32",
            (1,),
            "weight",
        ),
        ModelSpec(
            "dnn_classifier",
            "DNNClassifier",
            lambda c: {
                "feature_columns": [
                    c["age"],
                    c["language_embedding"],
                    c["hour_indicator"],
                    c["age_buckets"],
                ]
            },
            lambda tf: {
                "hidden_units": [10, 6],
                "n_classes": 3,
                "label_vocabulary": ["low", "mid", "high"],
                "dropout": 0.1,
            },
            _three_classes,
            "string",
        ),
        ModelSpec(
            "dnn_regressor",
            "DNNRegressor",
            lambda c: {"feature_columns": [c["x"], c["user_indicator"], c["color_embedding"]]},
            lambda tf: {
                "hidden_units": [6],
                "label_dimension": 2,
                "activation_fn": tf.nn.tanh,
                "optimizer": "RMSProp",
            },
            _two_targets,
            "float32",
            (2,),
        ),
        ModelSpec(
            "combined_classifier",
            "DNNLinearCombinedClassifier",
            lambda c: {
                "linear_feature_columns": [c["age_x_language"], c["hour"]],
                "dnn_feature_columns": [c["language_embedding"], c["age_scaled"]],
            },
            lambda tf: {"dnn_hidden_units": [4]},
            _binary,
            "int64",
            (),
            "weight",
        ),
        ModelSpec(
            "combined_regressor",
            "DNNLinearCombinedRegressor",
            lambda c: {
                "linear_feature_columns": [c["x"], c["user"]],
                "dnn_feature_columns": [c["age_buckets"], c["color_embedding"]],
            },
            lambda tf: {"dnn_hidden_units": [5, 3], "dnn_optimizer": "SGD"},
            _regression,
            "float32",
            (1,),
        ),
        ModelSpec(
            "custom_model_fn",
            None,
            lambda c: {"feature_columns": [c["age"], c["language_embedding"], c["x"]]},
            lambda tf: {"hidden_units": [4]},
            _binary,
            "int64",
        ),
    )
}


def features(count: int, seed: int) -> dict[str, np.ndarray]:
    """`count` examples with a value for every feature above (one per example)."""
    rng = np.random.RandomState(seed)
    return {
        "age": rng.uniform(18.0, 80.0, count).astype(np.float32),
        "x": rng.normal(size=(count, 2)).astype(np.float32),
        "language": rng.choice(["en", "fr", "de", "es"], count).astype(object),
        "color": rng.choice(["red", "green", "blue", "purple"], count).astype(object),
        "hour": rng.randint(0, HOURS, count).astype(np.int64),
        "user": np.array([f"u{i}" for i in rng.randint(0, 100, count)], dtype=object),
        "weight": rng.uniform(0.5, 2.0, count).astype(np.float32),
    }


def labelled(spec: ModelSpec, count: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`count` examples and their labels for `spec`."""
    data = features(count, seed)
    labels = spec.label(data, np.random.RandomState(seed + 1))
    if spec.label_shape == (1,):
        labels = labels.reshape(-1, 1)
    return data, labels


def serialized_examples(tf: Any, data: Mapping[str, np.ndarray]) -> list[bytes]:
    """One serialized tf.Example per example, holding every feature but the weight."""
    count = len(data["age"])
    examples = []
    for i in range(count):
        feature = {}
        for name, values in data.items():
            if name == "weight":
                continue
            flat = np.atleast_1d(values[i])
            if values.dtype == object:
                item = tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[str(v).encode() for v in flat])
                )
            elif np.issubdtype(values.dtype, np.integer):
                item = tf.train.Feature(int64_list=tf.train.Int64List(value=flat.tolist()))
            else:
                item = tf.train.Feature(float_list=tf.train.FloatList(value=flat.tolist()))
            feature[name] = item
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        examples.append(example.SerializeToString())
    return examples
