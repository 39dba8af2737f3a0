"""The heads on cases the committed model_dirs do not cover: a binary label vocabulary, integer
multi-class labels, "sum" loss reduction, a weight column with a normalizer, bad labels.

Expected values are worked out with NumPy from fixed logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from airflow_tf_export.estimator.canned.arguments import classification_head, regression_head
from airflow_tf_export.savedmodel.errors import DefinitionError

LOGITS = np.array([[-1.0], [2.0], [0.5], [-0.2], [1.1], [-2.4]], dtype=np.float32)
WEIGHTS = np.array([1.0, 2.0, 0.5, 1.5, 1.0, 0.25], dtype=np.float32)
POSITIVE = np.array([1, 0, 1, 1, 0, 0], dtype=bool)


def _run(head: Any, logits: np.ndarray, labels: Any, features: dict[str, Any]) -> dict[str, Any]:
    """Predictions, loss and metric values of `head` on constant inputs."""
    import tensorflow as tf

    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        logits_tensor = tf.constant(logits)
        predictions = head.predictions(logits_tensor)
        loss, metric_ops = head.loss_and_metrics(
            {k: tf.constant(v) for k, v in features.items()},
            tf.constant(labels),
            logits_tensor,
            predictions,
        )
        metrics = metric_ops()
        session.run([tf.compat.v1.tables_initializer(), tf.compat.v1.local_variables_initializer()])
        session.run({key: update for key, (_, update) in metrics.items()})
        return session.run(
            {
                "predictions": predictions,
                "loss": loss,
                "metrics": {k: v for k, (v, _) in metrics.items()},
            }
        )


def _sigmoid_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def _exact_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> float:
    """Weighted probability that a positive outscores a negative (no ties here)."""
    pairs = weights[positive][:, None] * weights[~positive][None, :]
    above = scores[positive][:, None] > scores[~positive][None, :]
    return float((pairs * above).sum() / pairs.sum())


def test_binary_head_with_label_vocabulary_weights_and_sum_reduction() -> None:
    head = classification_head(2, "w", ["no", "yes"], "sum")
    labels = np.where(POSITIVE, "yes", "no").astype(object)
    result = _run(head, LOGITS, labels, {"w": WEIGHTS})
    logistic = 1 / (1 + np.exp(-LOGITS[:, 0]))
    predicted = logistic > 0.5
    assert [c[0].decode() for c in result["predictions"]["classes"]] == [
        "yes" if p else "no" for p in predicted
    ]
    assert result["predictions"]["all_classes"].tolist() == [[b"no", b"yes"]] * len(LOGITS)
    np.testing.assert_allclose(result["predictions"]["probabilities"][:, 1], logistic, rtol=1e-6)
    losses = _sigmoid_cross_entropy(LOGITS[:, 0], POSITIVE.astype(np.float32))
    assert result["loss"] == pytest.approx(float((losses * WEIGHTS).sum()), rel=1e-6)
    metrics = result["metrics"]
    total = WEIGHTS.sum()
    tp = WEIGHTS[predicted & POSITIVE].sum()
    assert metrics["accuracy"] == pytest.approx(WEIGHTS[predicted == POSITIVE].sum() / total)
    assert metrics["precision"] == pytest.approx(tp / WEIGHTS[predicted].sum())
    assert metrics["recall"] == pytest.approx(tp / WEIGHTS[POSITIVE].sum())
    assert metrics["average_loss"] == pytest.approx(
        float((losses * WEIGHTS).sum() / total), rel=1e-6
    )
    assert metrics["label/mean"] == pytest.approx(WEIGHTS[POSITIVE].sum() / total)
    assert metrics["accuracy_baseline"] == pytest.approx(
        max(metrics["label/mean"], 1 - metrics["label/mean"])
    )
    assert metrics["prediction/mean"] == pytest.approx(
        float((logistic * WEIGHTS).sum() / total), rel=1e-6
    )
    assert metrics["auc"] == pytest.approx(_exact_auc(logistic, POSITIVE, WEIGHTS), abs=1e-6)
    assert 0.0 < metrics["auc_precision_recall"] <= 1.0


def test_multi_class_head_with_integer_labels() -> None:
    head = classification_head(3, None, None, "sum_over_batch_size")
    logits = np.array(
        [[0.1, 2.0, -1.0], [1.5, 0.2, 0.3], [-0.5, -0.1, 0.9], [0.0, 0.0, 3.0]], np.float32
    )
    labels = np.array([1, 2, 2, 0], dtype=np.int64)
    result = _run(head, logits, labels, {})
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = shifted / shifted.sum(axis=1, keepdims=True)
    losses = -np.log(probabilities[np.arange(4), labels])
    assert result["predictions"]["classes"].tolist() == [[b"1"], [b"0"], [b"2"], [b"2"]]
    assert result["predictions"]["all_class_ids"].tolist() == [[0, 1, 2]] * 4
    assert result["loss"] == pytest.approx(float(losses.mean()), rel=1e-6)
    assert result["metrics"] == pytest.approx(
        {"accuracy": 0.5, "average_loss": float(losses.mean())}, rel=1e-6
    )


def test_regression_weight_column_with_a_normalizer() -> None:
    import tensorflow as tf

    weight = tf.feature_column.numeric_column("w", normalizer_fn=lambda w: w * 2.0)
    head = regression_head(1, weight, "sum_over_batch_size")
    labels = np.array([[0.5], [1.0], [0.0], [-1.0], [2.0], [0.3]], dtype=np.float32)
    result = _run(head, LOGITS, labels, {"w": WEIGHTS})
    weights = WEIGHTS * 2.0
    squared = (LOGITS[:, 0] - labels[:, 0]) ** 2
    assert result["loss"] == pytest.approx(float((squared * weights).mean()), rel=1e-6)
    assert result["metrics"]["average_loss"] == pytest.approx(
        float((squared * weights).sum() / weights.sum()), rel=1e-6
    )
    assert result["metrics"]["label/mean"] == pytest.approx(
        float((labels[:, 0] * weights).sum() / weights.sum()), rel=1e-6
    )


@pytest.mark.parametrize(
    ("head", "labels", "message"),
    [
        (
            lambda: classification_head(3, None, None, "sum"),
            np.array([0, 3, 1, 2, 0, 1]),
            r"labels must be class ids in \[0, 2\]",
        ),
        (
            lambda: classification_head(2, None, ["no", "yes"], "sum"),
            np.array(["no", "maybe", "yes", "no", "no", "no"], object),
            "labels must be one of the label_vocabulary: no, yes",
        ),
    ],
)
def test_labels_outside_the_classes_fail_when_the_graph_runs(
    head: Any, labels: np.ndarray, message: str
) -> None:
    import tensorflow as tf

    logits = np.zeros((6, head().logits_dimension), np.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        _run(head(), logits, labels, {})


def test_label_shape_and_type_mismatches_fail_when_the_graph_is_built() -> None:
    with pytest.raises(
        DefinitionError, match="labels have 3 values per example; the head expects 2"
    ):
        _run(
            regression_head(2, None, "sum"),
            np.zeros((2, 2), np.float32),
            np.zeros((2, 3), np.float32),
            {},
        )
    with pytest.raises(DefinitionError, match="give label_vocabulary to use string labels"):
        _run(
            classification_head(3, None, None, "sum"),
            np.zeros((2, 3), np.float32),
            np.array(["a", "b"], object),
            {},
        )
