"""The canned estimators' networks in graph mode: the linear model and the DNN, variables named
as TF 2.15 named them (`linear/linear_model/<column>/weights`, `dnn/hiddenlayer_0/kernel`, ...).

The feature columns themselves turn raw features into tensors (TensorFlow 2.21 still has
`tf.feature_column`); what is rebuilt here is the layers around them: where each variable
lives, and the order in which the column outputs are summed or concatenated (by column name).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_tf_export.estimator.canned.columns import is_categorical

_INVALID_SCOPE_CHARACTER = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass
class _ColumnState:
    """The state manager feature columns create their variables and lookup tables through.

    Variables come from `tf.compat.v1.get_variable` in the current variable scope, so they
    get the names the Estimator's feature layers gave them.
    """

    variables: list[tuple[Any, bool]] = field(default_factory=list)
    _by_column: dict[tuple[Any, str], Any] = field(default_factory=dict)
    _resources: dict[tuple[Any, str], Any] = field(default_factory=dict)

    def create_variable(
        self,
        feature_column: Any,
        name: str,
        shape: Any,
        dtype: Any = None,
        trainable: bool = True,
        use_resource: bool = True,
        initializer: Any = None,
    ) -> Any:
        import tensorflow as tf

        variable = tf.compat.v1.get_variable(
            name,
            shape=shape,
            dtype=dtype or tf.float32,
            initializer=initializer,
            trainable=trainable,
            use_resource=True,
        )
        self._by_column[(feature_column, name)] = variable
        self.variables.append((variable, trainable))
        return variable

    def get_variable(self, feature_column: Any, name: str) -> Any:
        return self._by_column[(feature_column, name)]

    def add_resource(self, feature_column: Any, name: str, resource: Any) -> None:
        self._resources[(feature_column, name)] = resource

    def has_resource(self, feature_column: Any, name: str) -> bool:
        return (feature_column, name) in self._resources

    def get_resource(self, feature_column: Any, name: str) -> Any:
        return self._resources[(feature_column, name)]


@dataclass(frozen=True)
class Logits:
    """A network's output and the variables its optimizer trains."""

    logits: Any
    trainable_variables: tuple[Any, ...]


def _scope_name(column: Any) -> str:
    return _INVALID_SCOPE_CHARACTER.sub("_", column.name)


def _flat(tensor: Any, column: Any) -> Any:
    """A column's dense output as [batch, elements]."""
    import tensorflow as tf

    return tf.reshape(tensor, (tf.shape(tensor)[0], column.variable_shape.num_elements()))


def linear_logits(
    features: dict[str, Any], columns: Sequence[Any], units: int, sparse_combiner: str
) -> Logits:
    """The linear model: one weight per bucket of a categorical column and per element of a
    dense one, summed over the columns in name order, plus `bias_weights`."""
    import tensorflow as tf

    state = _ColumnState()
    cache = tf.__internal__.feature_column.FeatureTransformationCache(features)
    weighted_sums = []
    with tf.compat.v1.variable_scope("linear"), tf.compat.v1.variable_scope("linear_model"):
        for column in sorted(columns, key=lambda c: c.name):
            with tf.compat.v1.variable_scope(_scope_name(column)):
                column.create_state(state)
                categorical = is_categorical(column)
                rows = column.num_buckets if categorical else column.variable_shape.num_elements()
                weights = state.create_variable(
                    column, "weights", (rows, units), tf.float32, initializer=tf.zeros_initializer()
                )
                if categorical:
                    weighted_sums.append(
                        _categorical_sum(column, cache, state, weights, sparse_combiner)
                    )
                else:
                    flat = _flat(column.get_dense_tensor(cache, state), column)
                    weighted_sums.append(tf.matmul(flat, weights, name="weighted_sum"))
        bias = tf.compat.v1.get_variable(
            "bias_weights", shape=(units,), initializer=tf.zeros_initializer(), use_resource=True
        )
        logits = tf.nn.bias_add(
            tf.math.add_n(weighted_sums, name="weighted_sum_no_bias"), bias, name="weighted_sum"
        )
    # The linear model trained every variable it had, trainable or not.
    return Logits(logits, (*(v for v, _ in state.variables), bias))


def _categorical_sum(
    column: Any, cache: Any, state: _ColumnState, weights: Any, combiner: str
) -> Any:
    """The weights of the ids a categorical column gives each example, combined."""
    import tensorflow as tf

    sparse = column.get_sparse_tensors(cache, state)
    ids = tf.sparse.reshape(sparse.id_tensor, [sparse.id_tensor.dense_shape[0], -1])
    id_weights = sparse.weight_tensor
    if id_weights is not None:
        id_weights = tf.sparse.reshape(id_weights, [id_weights.dense_shape[0], -1])
    return tf.nn.safe_embedding_lookup_sparse(
        weights, ids, sparse_weights=id_weights, combiner=combiner, name="weighted_sum"
    )


def dnn_logits(
    features: dict[str, Any],
    *,
    columns: Sequence[Any],
    hidden_units: Sequence[int],
    units: int,
    activation_fn: Callable[[Any], Any] | None,
    dropout: float | None,
    training: bool,
) -> Logits:
    """The DNN: the dense column outputs concatenated in name order, fully connected hidden
    layers (dropout after each while training), and a linear logits layer."""
    import tensorflow as tf

    state = _ColumnState()
    cache = tf.__internal__.feature_column.FeatureTransformationCache(features)
    with tf.compat.v1.variable_scope("dnn"):
        with (
            tf.compat.v1.variable_scope("input_from_feature_columns"),
            tf.compat.v1.variable_scope("input_layer"),
        ):
            ordered = sorted(columns, key=lambda c: c.name)
            for column in ordered:
                with tf.compat.v1.variable_scope(_scope_name(column)):
                    column.create_state(state)
            net = tf.concat([_flat(c.get_dense_tensor(cache, state), c) for c in ordered], -1)
        layer_variables: list[Any] = []
        for index, width in enumerate(hidden_units):
            with tf.compat.v1.variable_scope(f"hiddenlayer_{index}"):
                net = _dense(net, width, activation_fn, layer_variables)
            if dropout is not None and training:
                net = tf.nn.dropout(net, rate=dropout)
        with tf.compat.v1.variable_scope("logits"):
            logits = _dense(net, units, None, layer_variables)
    column_variables = (v for v, trainable in state.variables if trainable)
    return Logits(logits, (*column_variables, *layer_variables))


def _dense(
    net: Any, width: int, activation_fn: Callable[[Any], Any] | None, variables: list[Any]
) -> Any:
    import tensorflow as tf

    kernel = tf.compat.v1.get_variable(
        "kernel",
        shape=(net.shape[-1], width),
        initializer=tf.compat.v1.glorot_uniform_initializer(),
        use_resource=True,
    )
    bias = tf.compat.v1.get_variable(
        "bias", shape=(width,), initializer=tf.zeros_initializer(), use_resource=True
    )
    variables.extend((kernel, bias))
    output = tf.nn.bias_add(tf.matmul(net, kernel), bias)
    return output if activation_fn is None else activation_fn(output)
