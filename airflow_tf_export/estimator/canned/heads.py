"""The canned estimators' heads: from logits to predictions, loss, eval metrics and signatures.

Binary classification (sigmoid), multi-class classification (softmax) and regression (squared
error), each with the prediction keys, metric names and serving signatures of tf.estimator's
V2 heads, the weight column applied to the loss and the metrics as they applied it, and label
vocabularies looked up as they looked them up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_tf_export.estimator.canned import metrics
from airflow_tf_export.estimator.export_outputs import (
    ClassificationOutput,
    ExportOutput,
    PredictOutput,
    RegressionOutput,
)
from airflow_tf_export.savedmodel.errors import DefinitionError

DEFAULT_SERVING_KEY = "serving_default"
CLASSIFY_SERVING_KEY = "classification"
REGRESS_SERVING_KEY = "regression"
PREDICT_SERVING_KEY = "predict"
LOSS_REDUCTIONS = ("sum_over_batch_size", "sum")


@dataclass(frozen=True)
class _Head:
    """What every head shares: the weight column and how the loss is reduced over a batch."""

    weight_column: Any
    loss_reduction: str

    def _weights(self, features: dict[str, Any], logits: Any) -> Any:
        """1.0, or the weight column's values shaped [batch, 1] (or [batch, d])."""
        import tensorflow as tf

        if self.weight_column is None:
            return tf.constant(1.0)
        column = self.weight_column
        if isinstance(column, str):
            column = tf.feature_column.numeric_column(column, shape=(1,))
        with tf.name_scope("weights"):
            cache = tf.__internal__.feature_column.FeatureTransformationCache(features)
            weights = tf.cast(column.get_dense_tensor(cache, None), tf.float32)
            if weights.shape.rank == logits.shape.rank - 1:
                weights = tf.expand_dims(weights, -1)
            return weights

    def _loss(self, unweighted: Any, weights: Any) -> Any:
        """The weighted losses summed, divided by their number for "sum_over_batch_size"."""
        import tensorflow as tf

        with tf.name_scope("losses"):
            weighted = unweighted * weights
            total = tf.reduce_sum(weighted)
            if self.loss_reduction == "sum":
                return total
            return tf.math.divide_no_nan(total, tf.cast(tf.size(weighted), tf.float32))


def _dense_labels(labels: Any, logits: Any, dimension: int) -> Any:
    """Labels shaped like the logits' batch, [batch, dimension] ([batch] gets a last axis)."""
    import tensorflow as tf

    if labels is None:
        raise DefinitionError("the head needs labels in the train and eval modes, got None")
    if isinstance(labels, tf.SparseTensor):
        raise DefinitionError(f"labels must be a dense tensor of shape [batch, {dimension}]")
    labels = tf.convert_to_tensor(labels)
    if labels.shape.rank is not None and labels.shape.rank == logits.shape.rank - 1:
        labels = tf.expand_dims(labels, -1)
    last = labels.shape[-1] if labels.shape.rank else None
    if last is not None and last != dimension:
        raise DefinitionError(
            f"labels have {last} values per example; the head expects {dimension}"
        )
    return labels


@dataclass(frozen=True)
class _ClassHead(_Head):
    """Classification: class ids, optionally named by a label vocabulary."""

    n_classes: int
    label_vocabulary: tuple[str, ...] | None

    def _label_ids(self, labels: Any, logits: Any) -> Any:
        """Label ids in [0, n_classes), checked when the graph runs."""
        import tensorflow as tf

        labels = _dense_labels(labels, logits, 1)
        if self.label_vocabulary is not None:
            if labels.dtype != tf.string:
                raise DefinitionError(
                    "labels must be strings when label_vocabulary is given, "
                    f"got {labels.dtype.name}"
                )
            table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    list(self.label_vocabulary), tf.range(self.n_classes, dtype=tf.int64)
                ),
                default_value=-1,
                name="class_id_lookup",
            )
            labels = table.lookup(labels)
        elif not (labels.dtype.is_integer or (self.n_classes == 2 and labels.dtype.is_floating)):
            raise DefinitionError(
                f"labels must be integer class ids, got {labels.dtype.name}; give "
                "label_vocabulary to use string labels"
            )
        message = (
            f"labels must be one of the label_vocabulary: {', '.join(self.label_vocabulary)}"
            if self.label_vocabulary is not None
            else f"labels must be class ids in [0, {self.n_classes - 1}]"
        )
        checks = [
            tf.compat.v1.debugging.assert_non_negative(labels, message=message),
            tf.compat.v1.debugging.assert_less_equal(
                labels, tf.cast(self.n_classes - 1, labels.dtype), message=message
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(labels)

    def _class_names(self, class_ids: Any) -> Any:
        import tensorflow as tf

        if self.label_vocabulary is None:
            return tf.strings.as_string(class_ids, name="str_classes")
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.range(self.n_classes, dtype=tf.int64), list(self.label_vocabulary)
            ),
            default_value="UNK",
            name="class_string_lookup",
        )
        return table.lookup(class_ids)

    def _all_classes(self, logits: Any) -> dict[str, Any]:
        """Every class id and name, once per example."""
        import tensorflow as tf

        batch = tf.shape(logits)[0]
        ids = tf.expand_dims(tf.range(self.n_classes), 0)
        names = (
            tf.constant([list(self.label_vocabulary)])
            if self.label_vocabulary is not None
            else tf.strings.as_string(ids)
        )
        return {
            "all_class_ids": tf.tile(ids, [batch, 1]),
            "all_classes": tf.tile(names, [batch, 1]),
        }

    def _class_predictions(self, class_logits: Any) -> dict[str, Any]:
        import tensorflow as tf

        class_ids = tf.expand_dims(tf.math.argmax(class_logits, axis=-1), -1)
        return {
            "probabilities": tf.nn.softmax(class_logits, name="probabilities"),
            "class_ids": class_ids,
            "classes": self._class_names(class_ids),
            **self._all_classes(class_logits),
        }


@dataclass(frozen=True)
class BinaryClassHead(_ClassHead):
    """Two classes, one logit: the sigmoid cross entropy."""

    logits_dimension = 1

    def predictions(self, logits: Any) -> dict[str, Any]:
        import tensorflow as tf

        with tf.name_scope("predictions"):
            two_class_logits = tf.concat([tf.zeros_like(logits), logits], -1)
            return {
                "logits": logits,
                "logistic": tf.math.sigmoid(logits, name="logistic"),
                **self._class_predictions(two_class_logits),
            }

    def export_outputs(self, predictions: dict[str, Any]) -> dict[str, ExportOutput]:
        classification = ClassificationOutput(
            scores=predictions["probabilities"], classes=predictions["all_classes"]
        )
        return {
            DEFAULT_SERVING_KEY: classification,
            CLASSIFY_SERVING_KEY: classification,
            REGRESS_SERVING_KEY: RegressionOutput(value=predictions["logistic"]),
            PREDICT_SERVING_KEY: PredictOutput(predictions),
        }

    def loss_and_metrics(
        self, features: dict[str, Any], labels: Any, logits: Any, predictions: dict[str, Any]
    ) -> tuple[Any, Callable[[], dict[str, tuple[Any, Any]]]]:
        import tensorflow as tf

        label_values = tf.cast(self._label_ids(labels, logits), tf.float32)
        unweighted = tf.nn.sigmoid_cross_entropy_with_logits(labels=label_values, logits=logits)
        weights = self._weights(features, logits)

        def eval_metric_ops() -> dict[str, tuple[Any, Any]]:
            with tf.name_scope("metrics"):
                label_mean = metrics.mean("label/mean", label_values, weights)
                precision, recall = metrics.precision_and_recall(
                    label_values, predictions["class_ids"], weights
                )
                logistic = predictions["logistic"]
                found = {
                    "average_loss": metrics.mean("average_loss", unweighted, weights),
                    "accuracy": metrics.accuracy(
                        "accuracy", label_values, predictions["class_ids"], weights
                    ),
                    "precision": precision,
                    "recall": recall,
                    "prediction/mean": metrics.mean("prediction/mean", logistic, weights),
                    "label/mean": label_mean,
                    "accuracy_baseline": metrics.accuracy_baseline(label_mean),
                    "auc": metrics.auc("auc", label_values, logistic, weights, curve="ROC"),
                    "auc_precision_recall": metrics.auc(
                        "auc_precision_recall", label_values, logistic, weights, curve="PR"
                    ),
                }
            return {key: metric.as_pair() for key, metric in found.items()}

        return self._loss(unweighted, weights), eval_metric_ops


@dataclass(frozen=True)
class MultiClassHead(_ClassHead):
    """More than two classes, one logit each: the softmax cross entropy."""

    @property
    def logits_dimension(self) -> int:
        return self.n_classes

    def predictions(self, logits: Any) -> dict[str, Any]:
        import tensorflow as tf

        with tf.name_scope("predictions"):
            return {"logits": logits, **self._class_predictions(logits)}

    def export_outputs(self, predictions: dict[str, Any]) -> dict[str, ExportOutput]:
        classification = ClassificationOutput(
            scores=predictions["probabilities"], classes=predictions["all_classes"]
        )
        return {
            DEFAULT_SERVING_KEY: classification,
            CLASSIFY_SERVING_KEY: classification,
            PREDICT_SERVING_KEY: PredictOutput(predictions),
        }

    def loss_and_metrics(
        self, features: dict[str, Any], labels: Any, logits: Any, predictions: dict[str, Any]
    ) -> tuple[Any, Callable[[], dict[str, tuple[Any, Any]]]]:
        import tensorflow as tf

        label_ids = self._label_ids(labels, logits)
        unweighted = tf.expand_dims(
            tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=tf.squeeze(label_ids, -1), logits=logits
            ),
            -1,
        )
        weights = self._weights(features, logits)

        def eval_metric_ops() -> dict[str, tuple[Any, Any]]:
            with tf.name_scope("metrics"):
                found = {
                    "average_loss": metrics.mean("average_loss", unweighted, weights),
                    "accuracy": metrics.accuracy(
                        "accuracy", label_ids, predictions["class_ids"], weights
                    ),
                }
            return {key: metric.as_pair() for key, metric in found.items()}

        return self._loss(unweighted, weights), eval_metric_ops


@dataclass(frozen=True)
class RegressionHead(_Head):
    """`label_dimension` real targets: the squared error."""

    label_dimension: int

    @property
    def logits_dimension(self) -> int:
        return self.label_dimension

    def predictions(self, logits: Any) -> dict[str, Any]:
        return {"predictions": logits}

    def export_outputs(self, predictions: dict[str, Any]) -> dict[str, ExportOutput]:
        regression = RegressionOutput(value=predictions["predictions"])
        return {
            DEFAULT_SERVING_KEY: regression,
            REGRESS_SERVING_KEY: regression,
            PREDICT_SERVING_KEY: PredictOutput(predictions),
        }

    def loss_and_metrics(
        self, features: dict[str, Any], labels: Any, logits: Any, predictions: dict[str, Any]
    ) -> tuple[Any, Callable[[], dict[str, tuple[Any, Any]]]]:
        import tensorflow as tf

        label_values = tf.cast(_dense_labels(labels, logits, self.label_dimension), tf.float32)
        unweighted = tf.math.squared_difference(logits, label_values)
        weights = self._weights(features, logits)

        def eval_metric_ops() -> dict[str, tuple[Any, Any]]:
            with tf.name_scope("metrics"):
                found = {
                    "average_loss": metrics.mean("average_loss", unweighted, weights),
                    "label/mean": metrics.mean("label/mean", label_values, weights),
                    "prediction/mean": metrics.mean(
                        "prediction/mean", predictions["predictions"], weights
                    ),
                }
            return {key: metric.as_pair() for key, metric in found.items()}

        return self._loss(unweighted, weights), eval_metric_ops


Head = BinaryClassHead | MultiClassHead | RegressionHead
