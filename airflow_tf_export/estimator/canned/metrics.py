"""The canned heads' eval metrics in graph mode, as the Keras 2 metrics computed them.

Each metric is a `(value, update_op)` pair over local variables (collections
LOCAL_VARIABLES and METRIC_VARIABLES, as the Estimator put them): not saved in checkpoints,
zeroed by the local-variable initializer, accumulated by the update op, read by the value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AUC_THRESHOLDS = 200
PRECISION_THRESHOLD = 0.5


@dataclass(frozen=True)
class Metric:
    """One eval metric: the tensor to read, and the op that adds a batch."""

    value: Any
    update_op: Any

    def as_pair(self) -> tuple[Any, Any]:
        return (self.value, self.update_op)


@dataclass(frozen=True)
class MeanMetric(Metric):
    """A weighted mean, with the sums it reads (accuracy_baseline reads a label mean's)."""

    total: Any
    count: Any


def _local(shape: tuple[int, ...], name: str) -> Any:
    import tensorflow as tf

    collections = [tf.compat.v1.GraphKeys.LOCAL_VARIABLES, tf.compat.v1.GraphKeys.METRIC_VARIABLES]
    return tf.compat.v1.Variable(
        tf.zeros(shape, tf.float32),
        name=name,
        trainable=False,
        collections=collections,
        use_resource=True,
    )


def _broadcast(weights: Any, values: Any) -> Any:
    """Weights (a scalar, or one per example) repeated to the values' shape."""
    import tensorflow as tf

    return tf.cast(weights, tf.float32) * tf.ones_like(values)


def mean(name: str, values: Any, weights: Any) -> MeanMetric:
    """sum(values * weights) / sum(weights), weights broadcast to the values' shape."""
    import tensorflow as tf

    with tf.name_scope(name):
        return _mean(tf.cast(values, tf.float32), weights)


def _mean(values: Any, weights: Any) -> MeanMetric:
    import tensorflow as tf

    total = _local((), "total")
    count = _local((), "count")
    weights = _broadcast(weights, values)
    value_sum = tf.reduce_sum(values * weights)
    with tf.control_dependencies([value_sum]):
        total_added = total.assign_add(value_sum, read_value=False)
    with tf.control_dependencies([total_added]):
        update = count.assign_add(tf.reduce_sum(weights), read_value=False)
    return MeanMetric(tf.math.divide_no_nan(total, count), update, total, count)


def accuracy(name: str, labels: Any, predictions: Any, weights: Any) -> MeanMetric:
    """The weighted fraction of predictions equal to their label."""
    import tensorflow as tf

    with tf.name_scope(name):
        labels = tf.cast(labels, tf.float32)
        matches = tf.cast(tf.equal(labels, tf.cast(predictions, tf.float32)), tf.float32)
        return _mean(matches, weights)


def accuracy_baseline(label_mean: MeanMetric) -> Metric:
    """The accuracy of always predicting the most frequent class of a 0/1 label: read from the
    label mean's sums, so it has nothing of its own to update."""
    import tensorflow as tf

    with tf.name_scope("accuracy_baseline"):
        total = label_mean.total.read_value()
        count = label_mean.count.read_value()
        value = tf.math.divide_no_nan(tf.maximum(total, count - total), count)
        return Metric(value, tf.no_op())


def _flat_weighted(labels: Any, predictions: Any, weights: Any) -> tuple[Any, Any, Any]:
    """Labels as 0/1 (any non-zero label counts as 1), predictions and broadcast weights,
    each flattened."""
    import tensorflow as tf

    predictions = tf.cast(predictions, tf.float32)
    weights = _broadcast(weights, predictions)
    positive = tf.cast(tf.cast(tf.cast(labels, tf.float32), tf.bool), tf.float32)
    return tf.reshape(positive, [-1]), tf.reshape(predictions, [-1]), tf.reshape(weights, [-1])


def precision_and_recall(labels: Any, predictions: Any, weights: Any) -> tuple[Metric, Metric]:
    """Precision and recall of `predictions > 0.5` (the binary head feeds class ids)."""
    import tensorflow as tf

    with tf.name_scope("precision_recall"):
        positive, predicted, weights = _flat_weighted(labels, predictions, weights)
        predicted_positive = tf.cast(predicted > PRECISION_THRESHOLD, tf.float32)
        batch = {
            "true_positives": tf.reduce_sum(positive * predicted_positive * weights),
            "false_positives": tf.reduce_sum((1.0 - positive) * predicted_positive * weights),
            "false_negatives": tf.reduce_sum(positive * (1.0 - predicted_positive) * weights),
        }
    metrics = []
    for name, other in (("precision", "false_positives"), ("recall", "false_negatives")):
        with tf.name_scope(name):
            sums = {key: _local((), key) for key in ("true_positives", other)}
            update = tf.group(*(sums[key].assign_add(batch[key]) for key in sums))
            true_positives = sums["true_positives"]
            value = tf.math.divide_no_nan(true_positives, true_positives + sums[other])
        metrics.append(Metric(value, update))
    return metrics[0], metrics[1]


def auc(name: str, labels: Any, predictions: Any, weights: Any, *, curve: str) -> Metric:
    """Area under the ROC curve (`curve="ROC"`) or the precision-recall curve (`"PR"`), from
    counts at 200 evenly spaced thresholds, interpolated as Keras' AUC does by default."""
    import tensorflow as tf

    with tf.name_scope(name):
        counts = {
            key: _local((AUC_THRESHOLDS,), key)
            for key in ("true_positives", "true_negatives", "false_positives", "false_negatives")
        }
        positive, predicted, weights = _flat_weighted(labels, predictions, weights)
        predicted = tf.clip_by_value(predicted, 0.0, 1.0)
        positive_weight = positive * weights
        negative_weight = (1.0 - positive) * weights
        # A prediction p is above threshold i/(n-1) for every i below ceil(p*(n-1)): count it
        # in that bucket, then add the buckets from the top down. The lowest threshold is just
        # below 0, so even p == 0 is above it.
        buckets = tf.cast(tf.nn.relu(tf.math.ceil(predicted * (AUC_THRESHOLDS - 1)) - 1), tf.int32)
        true_positives = tf.cumsum(
            tf.math.unsorted_segment_sum(positive_weight, buckets, AUC_THRESHOLDS), reverse=True
        )
        false_positives = tf.cumsum(
            tf.math.unsorted_segment_sum(negative_weight, buckets, AUC_THRESHOLDS), reverse=True
        )
        update = tf.group(
            counts["true_positives"].assign_add(true_positives),
            counts["false_positives"].assign_add(false_positives),
            counts["true_negatives"].assign_add(tf.reduce_sum(negative_weight) - false_positives),
            counts["false_negatives"].assign_add(tf.reduce_sum(positive_weight) - true_positives),
        )
        read = {key: variable.read_value() for key, variable in counts.items()}
        value = _pr_auc(read) if curve == "PR" else _roc_auc(read)
    return Metric(value, update)


def _roc_auc(counts: dict[str, Any]) -> Any:
    """Trapezoids under recall over false positive rate."""
    import tensorflow as tf

    tp, fn = counts["true_positives"], counts["false_negatives"]
    fp, tn = counts["false_positives"], counts["true_negatives"]
    recall = tf.math.divide_no_nan(tp, tp + fn)
    false_positive_rate = tf.math.divide_no_nan(fp, fp + tn)
    heights = (recall[: AUC_THRESHOLDS - 1] + recall[1:]) / 2.0
    widths = false_positive_rate[: AUC_THRESHOLDS - 1] - false_positive_rate[1:]
    return tf.reduce_sum(widths * heights)


def _pr_auc(counts: dict[str, Any]) -> Any:
    """Davis & Goadrich's interpolation of precision between thresholds: true positives and
    predicted positives vary linearly in each interval, so its area has a closed form."""
    import tensorflow as tf

    n = AUC_THRESHOLDS
    tp, fp, fn = counts["true_positives"], counts["false_positives"], counts["false_negatives"]
    dtp = tp[: n - 1] - tp[1:]
    predicted_positive = tp + fp
    dp = predicted_positive[: n - 1] - predicted_positive[1:]
    slope = tf.math.divide_no_nan(dtp, tf.maximum(dp, 0))
    intercept = tp[1:] - slope * predicted_positive[1:]
    both_positive = tf.logical_and(predicted_positive[: n - 1] > 0, predicted_positive[1:] > 0)
    ratio = tf.where(
        both_positive,
        tf.math.divide_no_nan(predicted_positive[: n - 1], tf.maximum(predicted_positive[1:], 0)),
        tf.ones_like(predicted_positive[1:]),
    )
    increments = tf.math.divide_no_nan(
        slope * (dtp + intercept * tf.math.log(ratio)), tf.maximum(tp[1:] + fn[1:], 0)
    )
    return tf.reduce_sum(increments)
