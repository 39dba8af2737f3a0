"""A canned estimator's model_fn: a linear part, a DNN part or both, under one head.

`CannedModel.model_fn` builds what the TF 2.15 canned estimator built for a mode: the
networks' logits (summed when both parts exist), the head's predictions and signatures, its
loss and eval metrics, and the train op: one legacy-optimizer step per part, the DNN's
optimizer (or the only one) counting its iterations in the global step, as tf.estimator did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_tf_export.estimator.canned.heads import Head
from airflow_tf_export.estimator.canned.networks import Logits, dnn_logits, linear_logits
from airflow_tf_export.estimator.canned.optimizer_updates import minimize
from airflow_tf_export.estimator.canned.optimizers import OptimizerSpec
from airflow_tf_export.estimator.mode_keys import ModeKeys
from airflow_tf_export.estimator.spec import EstimatorSpec
from airflow_tf_export.savedmodel.errors import DefinitionError


@dataclass(frozen=True)
class LinearPart:
    """The linear model: its feature columns, how it combines multivalent categorical
    features, and its optimizer."""

    columns: tuple[Any, ...]
    sparse_combiner: str
    optimizer: OptimizerSpec


@dataclass(frozen=True)
class DnnPart:
    """The DNN: its (dense) feature columns, hidden layer widths, activation (None: none),
    dropout rate while training (None: no dropout) and optimizer."""

    columns: tuple[Any, ...]
    hidden_units: tuple[int, ...]
    activation_fn: Callable[[Any], Any] | None
    dropout: float | None
    optimizer: OptimizerSpec


@dataclass(frozen=True)
class CannedModel:
    """One canned estimator's model: a head over a DNN part, a linear part, or both."""

    head: Head
    dnn: DnnPart | None = None
    linear: LinearPart | None = None

    @property
    def feature_columns(self) -> tuple[Any, ...]:
        """Every feature column the model reads (the DNN's first)."""
        return (
            *(self.dnn.columns if self.dnn else ()),
            *(self.linear.columns if self.linear else ()),
        )

    def model_fn(self, features: Any, labels: Any, mode: str) -> EstimatorSpec:
        """The EstimatorSpec for `mode`, built in the current graph, whose global step exists."""
        import tensorflow as tf

        if not isinstance(features, dict):
            raise DefinitionError(
                f"features must be a dict of tensors, got {type(features).__name__}"
            )
        trained = self._networks(features, training=mode == ModeKeys.TRAIN)
        logits = trained[0][1].logits
        for _, part in trained[1:]:
            logits = logits + part.logits
        with tf.name_scope("head"):
            predictions = self.head.predictions(logits)
            if mode == ModeKeys.PREDICT:
                outputs = self.head.export_outputs(predictions)
                return EstimatorSpec(mode, predictions=predictions, export_outputs=outputs)
            loss, eval_metric_ops = self.head.loss_and_metrics(
                features, labels, logits, predictions
            )
            if mode == ModeKeys.EVAL:
                return EstimatorSpec(
                    mode, predictions=predictions, loss=loss, eval_metric_ops=eval_metric_ops()
                )
        train_op = _train_op(loss, trained)
        return EstimatorSpec(mode, predictions=predictions, loss=loss, train_op=train_op)

    def _networks(
        self, features: dict[str, Any], *, training: bool
    ) -> list[tuple[OptimizerSpec, Logits]]:
        """Each part's optimizer and logits, the DNN first."""
        units = self.head.logits_dimension
        built = []
        if self.dnn is not None:
            dnn = dnn_logits(
                features,
                columns=self.dnn.columns,
                hidden_units=self.dnn.hidden_units,
                units=units,
                activation_fn=self.dnn.activation_fn,
                dropout=self.dnn.dropout,
                training=training,
            )
            built.append((self.dnn.optimizer, dnn))
        if self.linear is not None:
            linear = linear_logits(
                features, self.linear.columns, units, self.linear.sparse_combiner
            )
            built.append((self.linear.optimizer, linear))
        return built


def _train_op(loss: Any, trained: list[tuple[OptimizerSpec, Logits]]) -> Any:
    """One step of every part's optimizer, in the `training` name scope the checkpoint's
    optimizer variables live in; the first optimizer's iterations are the global step."""
    import tensorflow as tf

    global_step = tf.compat.v1.train.get_or_create_global_step()
    with tf.compat.v1.name_scope(""), tf.name_scope("training"):
        steps = [
            minimize(spec, loss, logits.trainable_variables, global_step if index == 0 else None)
            for index, (spec, logits) in enumerate(trained)
        ]
    return steps[0] if len(steps) == 1 else tf.group(*steps)
