"""The canned estimators' constructor arguments, checked and turned into a `CannedModel`'s parts.

Every check runs when the estimator is constructed, before any graph or export exists, and a
bad argument is a DefinitionError naming it and what would be valid. The learning rates given
to optimizer names are tf.estimator's: 0.2 for LinearClassifier / LinearRegressor, each
optimizer's own default for DNNClassifier / DNNRegressor, and 0.001 (DNN) and
min(0.005, 1/sqrt(number of linear columns)) (linear) for the DNNLinearCombined estimators.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from airflow_tf_export.estimator.canned.columns import check_feature_columns
from airflow_tf_export.estimator.canned.heads import (
    LOSS_REDUCTIONS,
    BinaryClassHead,
    MultiClassHead,
    RegressionHead,
)
from airflow_tf_export.estimator.canned.model import DnnPart, LinearPart
from airflow_tf_export.estimator.canned.optimizers import resolve_optimizer
from airflow_tf_export.savedmodel.errors import DefinitionError

LINEAR_LEARNING_RATE = 0.2
COMBINED_DNN_LEARNING_RATE = 0.001
COMBINED_LINEAR_LEARNING_RATE = 0.005
SPARSE_COMBINERS = ("sum", "mean", "sqrtn")

_INSTEAD = {
    "model_dir": (
        "the model_dir is where the export operator or DAG template reads checkpoints from: "
        "give it there (e.g. model_dir= of the export operator)"
    ),
    "config": "there is no RunConfig here; drop config (the export needs none of its settings)",
    "warm_start_from": (
        "the export restores every variable from the model_dir's checkpoint; drop warm_start_from"
    ),
}


def reject_unsupported(**arguments: Any) -> None:
    """model_dir, config and warm_start_from belong to training, which happens elsewhere."""
    for name, value in arguments.items():
        if value is not None:
            raise DefinitionError(f"{name}={value!r} is not supported here: {_INSTEAD[name]}")


def reject_batch_norm(batch_norm: Any) -> None:
    if batch_norm:
        raise DefinitionError(
            "batch_norm=True is not supported: the canned DNNs with batch normalization cannot "
            "be rebuilt here; export such a model_dir with tf.estimator on TensorFlow 2.15"
        )


def _check_loss_reduction(loss_reduction: Any) -> str:
    if loss_reduction not in LOSS_REDUCTIONS:
        raise DefinitionError(
            f"loss_reduction={loss_reduction!r} is not supported; use one of "
            f"{', '.join(repr(r) for r in LOSS_REDUCTIONS)} "
            "(tf.losses.Reduction.SUM_OVER_BATCH_SIZE or tf.losses.Reduction.SUM)"
        )
    return str(loss_reduction)


def _check_weight_column(weight_column: Any) -> Any:
    if weight_column is None or isinstance(weight_column, str):
        return weight_column
    if type(weight_column).__name__ != "NumericColumn":
        raise DefinitionError(
            f"weight_column={weight_column!r} must be a feature name or a "
            "tf.feature_column.numeric_column"
        )
    return weight_column


def classification_head(
    n_classes: Any, weight_column: Any, label_vocabulary: Any, loss_reduction: Any
) -> BinaryClassHead | MultiClassHead:
    """The binary head for 2 classes, the multi-class head for more."""
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise DefinitionError(f"n_classes={n_classes!r} must be an integer of at least 2")
    vocabulary = None
    if label_vocabulary is not None:
        if not isinstance(label_vocabulary, list | tuple) or not all(
            isinstance(label, str) for label in label_vocabulary
        ):
            raise DefinitionError(
                f"label_vocabulary={label_vocabulary!r} must be a list of strings"
            )
        if len(label_vocabulary) != n_classes or len(set(label_vocabulary)) != n_classes:
            raise DefinitionError(
                f"label_vocabulary={label_vocabulary!r} must name each of the {n_classes} "
                "classes once"
            )
        vocabulary = tuple(label_vocabulary)
    head_class = BinaryClassHead if n_classes == 2 else MultiClassHead
    return head_class(
        _check_weight_column(weight_column),
        _check_loss_reduction(loss_reduction),
        n_classes,
        vocabulary,
    )


def regression_head(
    label_dimension: Any, weight_column: Any, loss_reduction: Any
) -> RegressionHead:
    if (
        isinstance(label_dimension, bool)
        or not isinstance(label_dimension, int)
        or label_dimension < 1
    ):
        raise DefinitionError(
            f"label_dimension={label_dimension!r} must be an integer of at least 1"
        )
    return RegressionHead(
        _check_weight_column(weight_column), _check_loss_reduction(loss_reduction), label_dimension
    )


def linear_part(
    columns: Any,
    optimizer: Any,
    sparse_combiner: Any,
    *,
    names: tuple[str, str, str],
    default_learning_rate: float,
) -> LinearPart:
    """`names`: the estimator's names of the columns, optimizer and combiner arguments."""
    columns_name, optimizer_name, combiner_name = names
    if sparse_combiner not in SPARSE_COMBINERS:
        raise DefinitionError(
            f"{combiner_name}={sparse_combiner!r} must be one of "
            f"{', '.join(repr(c) for c in SPARSE_COMBINERS)}"
        )
    return LinearPart(
        check_feature_columns(columns, argument=columns_name, dense_only=False),
        str(sparse_combiner),
        resolve_optimizer(
            optimizer, argument=optimizer_name, default_learning_rate=default_learning_rate
        ),
    )


def dnn_part(
    columns: Any,
    hidden_units: Any,
    optimizer: Any,
    activation_fn: Any,
    dropout: Any,
    *,
    names: tuple[str, str, str, str, str],
    default_learning_rate: float | None,
) -> DnnPart:
    """`names`: the estimator's names of the columns, hidden units, optimizer, activation and
    dropout arguments."""
    columns_name, units_name, optimizer_name, activation_name, dropout_name = names
    if not isinstance(hidden_units, Iterable) or isinstance(hidden_units, str):
        raise DefinitionError(f"{units_name}={hidden_units!r} must be a list of layer widths")
    units = tuple(hidden_units)
    if not units or not all(
        isinstance(u, int) and not isinstance(u, bool) and u > 0 for u in units
    ):
        raise DefinitionError(
            f"{units_name}={hidden_units!r} must list at least one positive layer width"
        )
    if activation_fn is not None and not callable(activation_fn):
        raise DefinitionError(
            f"{activation_name}={activation_fn!r} must be a function such as tf.nn.relu, or "
            "None (no activation)"
        )
    if dropout is not None and not (isinstance(dropout, int | float) and 0 <= dropout < 1):
        raise DefinitionError(f"{dropout_name}={dropout!r} must be None or a rate in [0, 1)")
    return DnnPart(
        check_feature_columns(columns, argument=columns_name, dense_only=True),
        units,
        activation_fn,
        None if dropout is None else float(dropout),
        resolve_optimizer(
            optimizer, argument=optimizer_name, default_learning_rate=default_learning_rate
        ),
    )


def combined_linear_learning_rate(linear_feature_columns: Any) -> float:
    """tf.estimator's default for the linear half of a DNNLinearCombined estimator."""
    count = len(tuple(linear_feature_columns))
    return min(COMBINED_LINEAR_LEARNING_RATE, 1.0 / math.sqrt(count))
