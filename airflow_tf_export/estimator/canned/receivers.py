"""The canned estimators' default receivers: the inputs almost every user exported them with.

serve:        a batch of serialized tf.Examples, parsed with
              `tf.feature_column.make_parse_example_spec` of every feature column.
train, eval:  one raw input per parsed feature ([batch, *shape] for a fixed-length feature,
              [batch] for a variable-length one), the weight column (float32 [batch]) and
              `label`: int64 [batch] (string with a label vocabulary) for a classifier,
              float32 [batch, label_dimension] for a regressor.

The parse spec is made when a receiver runs (in the export's graph), so constructing an
estimator does not need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from airflow_tf_export.estimator.canned.heads import Head, RegressionHead
from airflow_tf_export.estimator.receivers import (
    ServingInputReceiver,
    SupervisedInputReceiver,
    build_parsing_serving_input_receiver_fn,
    build_raw_supervised_input_receiver_fn,
)

LABEL_KEY = "label"


def serving_input_receiver_fn(columns: Sequence[Any]) -> Callable[[], ServingInputReceiver]:
    """Serialized tf.Examples, parsed for every column."""

    def receiver() -> ServingInputReceiver:
        import tensorflow as tf

        spec = tf.feature_column.make_parse_example_spec(columns)
        return build_parsing_serving_input_receiver_fn(spec)()

    return receiver


def supervised_input_receiver_fn(
    columns: Sequence[Any], head: Head
) -> Callable[[], SupervisedInputReceiver]:
    """A raw input per parsed feature, the head's weight column and its label."""

    def receiver() -> SupervisedInputReceiver:
        import tensorflow as tf

        features = {}
        for key, parsing in tf.feature_column.make_parse_example_spec(columns).items():
            fixed = isinstance(parsing, tf.io.FixedLenFeature)
            shape = [None, *parsing.shape] if fixed else [None]
            features[key] = tf.TensorSpec(shape, parsing.dtype, name=key)
        weight_column = head.weight_column
        if weight_column is not None:
            key = weight_column if isinstance(weight_column, str) else weight_column.key
            features.setdefault(key, tf.TensorSpec([None], tf.float32, name=key))
        return build_raw_supervised_input_receiver_fn(features, _label(head))()

    return receiver


def _label(head: Head) -> Any:
    import tensorflow as tf

    if isinstance(head, RegressionHead):
        return tf.TensorSpec([None, head.label_dimension], tf.float32, name=LABEL_KEY)
    dtype = tf.int64 if head.label_vocabulary is None else tf.string
    return tf.TensorSpec([None], dtype, name=LABEL_KEY)
