"""The six canned estimators, with tf.estimator's names and constructor arguments.

Each is an `estimator.Estimator`: its constructor checks the arguments (see `arguments`) and
builds the `CannedModel` whose model_fn rebuilds the TF 2.15 graph. `model_dir`, `config`,
`warm_start_from` and `batch_norm=True` are rejected with what to do instead.
`serving_input_receiver_fn` and `supervised_input_receiver_fn` are this package's additions:
the receivers of the serve, and of the train and eval, signatures (see `receivers` for the
defaults).
"""

from __future__ import annotations

from typing import Any

from airflow_tf_export.estimator.canned import receivers
from airflow_tf_export.estimator.canned.arguments import (
    COMBINED_DNN_LEARNING_RATE,
    LINEAR_LEARNING_RATE,
    classification_head,
    combined_linear_learning_rate,
    dnn_part,
    linear_part,
    regression_head,
    reject_batch_norm,
    reject_unsupported,
)
from airflow_tf_export.estimator.canned.heads import Head
from airflow_tf_export.estimator.canned.model import CannedModel, DnnPart, LinearPart
from airflow_tf_export.estimator.definition import Estimator
from airflow_tf_export.savedmodel.errors import DefinitionError


def relu(features: Any) -> Any:
    """tf.nn.relu, the default activation (TensorFlow is imported when the graph is built)."""
    import tensorflow as tf

    return tf.nn.relu(features)


class _CannedEstimator(Estimator):
    """What the six share: an Estimator whose model_fn is the canned model's, with the
    default receivers unless others are given."""

    def __init__(
        self,
        model: CannedModel,
        *,
        serving_input_receiver_fn: Any,
        supervised_input_receiver_fn: Any,
    ) -> None:
        self._canned_model = model
        columns = model.feature_columns
        super().__init__(
            model.model_fn,
            serving_input_receiver_fn=serving_input_receiver_fn
            or receivers.serving_input_receiver_fn(columns),
            supervised_input_receiver_fn=supervised_input_receiver_fn
            or receivers.supervised_input_receiver_fn(columns, model.head),
        )

    @property
    def canned_model(self) -> CannedModel:
        """The model this estimator rebuilds: its head, its parts and their optimizers."""
        return self._canned_model


def _linear(
    head: Head,
    feature_columns: Any,
    optimizer: Any,
    sparse_combiner: Any,
) -> CannedModel:
    part = linear_part(
        feature_columns,
        optimizer,
        sparse_combiner,
        names=("feature_columns", "optimizer", "sparse_combiner"),
        default_learning_rate=LINEAR_LEARNING_RATE,
    )
    return CannedModel(head, linear=part)


def _dnn(
    head: Head,
    hidden_units: Any,
    feature_columns: Any,
    optimizer: Any,
    activation_fn: Any,
    dropout: Any,
) -> CannedModel:
    part = dnn_part(
        feature_columns,
        hidden_units,
        optimizer,
        activation_fn,
        dropout,
        names=("feature_columns", "hidden_units", "optimizer", "activation_fn", "dropout"),
        default_learning_rate=None,
    )
    return CannedModel(head, dnn=part)


def _combined(
    head: Head,
    *,
    linear_feature_columns: Any,
    linear_optimizer: Any,
    linear_sparse_combiner: Any,
    dnn_feature_columns: Any,
    dnn_optimizer: Any,
    dnn_hidden_units: Any,
    dnn_activation_fn: Any,
    dnn_dropout: Any,
) -> CannedModel:
    if not linear_feature_columns and not dnn_feature_columns:
        raise DefinitionError(
            "give linear_feature_columns, dnn_feature_columns or both: the model has no columns"
        )
    dnn: DnnPart | None = None
    if dnn_feature_columns:
        if dnn_hidden_units is None:
            raise DefinitionError("dnn_hidden_units must be given with dnn_feature_columns")
        dnn = dnn_part(
            dnn_feature_columns,
            dnn_hidden_units,
            dnn_optimizer,
            dnn_activation_fn,
            dnn_dropout,
            names=(
                "dnn_feature_columns",
                "dnn_hidden_units",
                "dnn_optimizer",
                "dnn_activation_fn",
                "dnn_dropout",
            ),
            default_learning_rate=COMBINED_DNN_LEARNING_RATE,
        )
    linear: LinearPart | None = None
    if linear_feature_columns:
        linear = linear_part(
            linear_feature_columns,
            linear_optimizer,
            linear_sparse_combiner,
            names=("linear_feature_columns", "linear_optimizer", "linear_sparse_combiner"),
            default_learning_rate=combined_linear_learning_rate(linear_feature_columns),
        )
    return CannedModel(head, dnn=dnn, linear=linear)


class LinearClassifier(_CannedEstimator):
    """tf.estimator.LinearClassifier: a linear model, binary or multi-class."""

    def __init__(
        self,
        feature_columns: Any,
        model_dir: Any = None,
        n_classes: int = 2,
        weight_column: Any = None,
        label_vocabulary: Any = None,
        optimizer: Any = "Ftrl",
        config: Any = None,
        warm_start_from: Any = None,
        loss_reduction: str = "sum_over_batch_size",
        sparse_combiner: str = "sum",
        *,
        serving_input_receiver_fn: Any = None,
        supervised_input_receiver_fn: Any = None,
    ) -> None:
        reject_unsupported(model_dir=model_dir, config=config, warm_start_from=warm_start_from)
        head = classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(
            _linear(head, feature_columns, optimizer, sparse_combiner),
            serving_input_receiver_fn=serving_input_receiver_fn,
            supervised_input_receiver_fn=supervised_input_receiver_fn,
        )


class LinearRegressor(_CannedEstimator):
    """tf.estimator.LinearRegressor: a linear model of `label_dimension` targets."""

    def __init__(
        self,
        feature_columns: Any,
        model_dir: Any = None,
        label_dimension: int = 1,
        weight_column: Any = None,
        optimizer: Any = "Ftrl",
        config: Any = None,
        warm_start_from: Any = None,
        loss_reduction: str = "sum_over_batch_size",
        sparse_combiner: str = "sum",
        *,
        serving_input_receiver_fn: Any = None,
        supervised_input_receiver_fn: Any = None,
    ) -> None:
        reject_unsupported(model_dir=model_dir, config=config, warm_start_from=warm_start_from)
        head = regression_head(label_dimension, weight_column, loss_reduction)
        super().__init__(
            _linear(head, feature_columns, optimizer, sparse_combiner),
            serving_input_receiver_fn=serving_input_receiver_fn,
            supervised_input_receiver_fn=supervised_input_receiver_fn,
        )


class DNNClassifier(_CannedEstimator):
    """tf.estimator.DNNClassifier: a fully connected network, binary or multi-class."""

    def __init__(
        self,
        hidden_units: Any,
        feature_columns: Any,
        model_dir: Any = None,
        n_classes: int = 2,
        weight_column: Any = None,
        label_vocabulary: Any = None,
        optimizer: Any = "Adagrad",
        activation_fn: Any = relu,
        dropout: float | None = None,
        config: Any = None,
        warm_start_from: Any = None,
        loss_reduction: str = "sum_over_batch_size",
        batch_norm: bool = False,
        *,
        serving_input_receiver_fn: Any = None,
        supervised_input_receiver_fn: Any = None,
    ) -> None:
        reject_unsupported(model_dir=model_dir, config=config, warm_start_from=warm_start_from)
        reject_batch_norm(batch_norm)
        head = classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        super().__init__(
            _dnn(head, hidden_units, feature_columns, optimizer, activation_fn, dropout),
            serving_input_receiver_fn=serving_input_receiver_fn,
            supervised_input_receiver_fn=supervised_input_receiver_fn,
        )


class DNNRegressor(_CannedEstimator):
    """tf.estimator.DNNRegressor: a fully connected network of `label_dimension` targets."""

    def __init__(
        self,
        hidden_units: Any,
        feature_columns: Any,
        model_dir: Any = None,
        label_dimension: int = 1,
        weight_column: Any = None,
        optimizer: Any = "Adagrad",
        activation_fn: Any = relu,
        dropout: float | None = None,
        config: Any = None,
        warm_start_from: Any = None,
        loss_reduction: str = "sum_over_batch_size",
        batch_norm: bool = False,
        *,
        serving_input_receiver_fn: Any = None,
        supervised_input_receiver_fn: Any = None,
    ) -> None:
        reject_unsupported(model_dir=model_dir, config=config, warm_start_from=warm_start_from)
        reject_batch_norm(batch_norm)
        head = regression_head(label_dimension, weight_column, loss_reduction)
        super().__init__(
            _dnn(head, hidden_units, feature_columns, optimizer, activation_fn, dropout),
            serving_input_receiver_fn=serving_input_receiver_fn,
            supervised_input_receiver_fn=supervised_input_receiver_fn,
        )


class DNNLinearCombinedClassifier(_CannedEstimator):
    """tf.estimator.DNNLinearCombinedClassifier: wide (linear) and deep (DNN) logits summed."""

    def __init__(
        self,
        model_dir: Any = None,
        linear_feature_columns: Any = None,
        linear_optimizer: Any = "Ftrl",
        dnn_feature_columns: Any = None,
        dnn_optimizer: Any = "Adagrad",
        dnn_hidden_units: Any = None,
        dnn_activation_fn: Any = relu,
        dnn_dropout: float | None = None,
        n_classes: int = 2,
        weight_column: Any = None,
        label_vocabulary: Any = None,
        config: Any = None,
        warm_start_from: Any = None,
        loss_reduction: str = "sum_over_batch_size",
        batch_norm: bool = False,
        linear_sparse_combiner: str = "sum",
        *,
        serving_input_receiver_fn: Any = None,
        supervised_input_receiver_fn: Any = None,
    ) -> None:
        reject_unsupported(model_dir=model_dir, config=config, warm_start_from=warm_start_from)
        reject_batch_norm(batch_norm)
        head = classification_head(n_classes, weight_column, label_vocabulary, loss_reduction)
        model = _combined(
            head,
            linear_feature_columns=linear_feature_columns,
            linear_optimizer=linear_optimizer,
            linear_sparse_combiner=linear_sparse_combiner,
            dnn_feature_columns=dnn_feature_columns,
            dnn_optimizer=dnn_optimizer,
            dnn_hidden_units=dnn_hidden_units,
            dnn_activation_fn=dnn_activation_fn,
            dnn_dropout=dnn_dropout,
        )
        super().__init__(
            model,
            serving_input_receiver_fn=serving_input_receiver_fn,
            supervised_input_receiver_fn=supervised_input_receiver_fn,
        )


class DNNLinearCombinedRegressor(_CannedEstimator):
    """tf.estimator.DNNLinearCombinedRegressor: wide and deep, `label_dimension` targets."""

    def __init__(
        self,
        model_dir: Any = None,
        linear_feature_columns: Any = None,
        linear_optimizer: Any = "Ftrl",
        dnn_feature_columns: Any = None,
        dnn_optimizer: Any = "Adagrad",
        dnn_hidden_units: Any = None,
        dnn_activation_fn: Any = relu,
        dnn_dropout: float | None = None,
        label_dimension: int = 1,
        weight_column: Any = None,
        config: Any = None,
        warm_start_from: Any = None,
        loss_reduction: str = "sum_over_batch_size",
        batch_norm: bool = False,
        linear_sparse_combiner: str = "sum",
        *,
        serving_input_receiver_fn: Any = None,
        supervised_input_receiver_fn: Any = None,
    ) -> None:
        reject_unsupported(model_dir=model_dir, config=config, warm_start_from=warm_start_from)
        reject_batch_norm(batch_norm)
        head = regression_head(label_dimension, weight_column, loss_reduction)
        model = _combined(
            head,
            linear_feature_columns=linear_feature_columns,
            linear_optimizer=linear_optimizer,
            linear_sparse_combiner=linear_sparse_combiner,
            dnn_feature_columns=dnn_feature_columns,
            dnn_optimizer=dnn_optimizer,
            dnn_hidden_units=dnn_hidden_units,
            dnn_activation_fn=dnn_activation_fn,
            dnn_dropout=dnn_dropout,
        )
        super().__init__(
            model,
            serving_input_receiver_fn=serving_input_receiver_fn,
            supervised_input_receiver_fn=supervised_input_receiver_fn,
        )
