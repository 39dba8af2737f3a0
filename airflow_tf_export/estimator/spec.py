"""`EstimatorSpec`: what a model_fn returns, checked as tf.estimator checked it.

Made inside the graph the writer builds for one mode, so every tensor must belong to that
graph. What each mode needs:

    TRAIN    loss and train_op
    EVAL     loss
    PREDICT  predictions (export_outputs default to a PredictOutput of them)

A missing or malformed field raises DefinitionError (a ValueError, as tf.estimator raised)
naming the mode and the field. TensorFlow is imported when a spec is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_tf_export.estimator.export_outputs import ExportOutput, PredictOutput
from airflow_tf_export.estimator.mode_keys import MODE_KEYS, ModeKeys
from airflow_tf_export.savedmodel.errors import DefinitionError
from airflow_tf_export.savedmodel.export_outputs import with_default_signature


class EstimatorSpec:
    """The model a model_fn built for one mode (tf.estimator.EstimatorSpec).

    mode             the ModeKeys value the model_fn was called with.
    predictions      a tensor or a dict of string keys to tensors.
    loss             a scalar (or shape [1]) tensor.
    train_op         the Operation (or tensor, or variable) one training step runs.
    eval_metric_ops  name -> (value tensor, update op) as tf.compat.v1.metrics.* return.
    export_outputs   signature key -> PredictOutput, ClassificationOutput or
                     RegressionOutput; in PREDICT, one output under another key is also
                     `serving_default`, several must include `serving_default`, and None
                     gives {"serving_default": PredictOutput(predictions)}.
    training_chief_hooks, training_hooks, evaluation_hooks, prediction_hooks
                     (keywords) SessionRunHooks, accepted so that model_fns passing them
                     run unchanged; an export runs no session hooks.
    scaffold         (keyword) a tf.compat.v1.train.Scaffold, accepted when it sets nothing
                     an export uses: tf.estimator's export used only its `saver` (to
                     restore and save the variables) and `local_init_op` (the main op);
                     init ops, init_fn, ready ops and summary ops are for training.
                     DefinitionError names the field when either is set.

    Keras metric objects are not accepted in eval_metric_ops (Keras 3 metrics do not run in
    a TF1 graph); use the tf.compat.v1.metrics function of the same name.
    """

    def __init__(
        self,
        mode: str,
        predictions: Any = None,
        loss: Any = None,
        train_op: Any = None,
        eval_metric_ops: Mapping[str, Any] | None = None,
        export_outputs: Mapping[str, ExportOutput] | None = None,
        *,
        training_chief_hooks: Any = None,
        training_hooks: Any = None,
        evaluation_hooks: Any = None,
        prediction_hooks: Any = None,
        scaffold: Any = None,
    ) -> None:
        import tensorflow as tf

        if mode not in MODE_KEYS:
            raise DefinitionError(
                f"EstimatorSpec mode {mode!r} is not a ModeKeys value; use one of "
                f"{sorted(MODE_KEYS)}"
            )
        graph = tf.compat.v1.get_default_graph()
        self.mode = mode
        self.train_op = _train_op(train_op, mode, graph)
        self.loss = _loss(loss, mode, graph)
        self.predictions = _predictions(predictions, mode, graph)
        self.eval_metric_ops = _eval_metric_ops(eval_metric_ops, mode, graph)
        self.export_outputs = _export_outputs(export_outputs, self.predictions, mode)
        self.training_chief_hooks = _hooks(training_chief_hooks, "training_chief_hooks", mode)
        self.training_hooks = _hooks(training_hooks, "training_hooks", mode)
        self.evaluation_hooks = _hooks(evaluation_hooks, "evaluation_hooks", mode)
        self.prediction_hooks = _hooks(prediction_hooks, "prediction_hooks", mode)
        _check_scaffold(scaffold, mode)


def _error(mode: str, message: str) -> DefinitionError:
    return DefinitionError(f"EstimatorSpec for mode {mode!r}: {message}")


def _in_graph(value: Any, what: str, mode: str, graph: Any) -> None:
    if value.graph is not graph:
        raise _error(
            mode,
            f"{what} {value.name!r} is not in the graph the model_fn was called in; build "
            "every tensor inside the model_fn",
        )


def _train_op(train_op: Any, mode: str, graph: Any) -> Any:
    import tensorflow as tf

    if train_op is None:
        if mode == ModeKeys.TRAIN:
            raise _error(mode, "train_op is missing; a model_fn must return one for training")
        return None
    if isinstance(train_op, tf.Variable):
        train_op = train_op.op
    if not isinstance(train_op, tf.Operation | tf.Tensor):
        raise _error(mode, f"train_op must be an Operation or a tensor, got {train_op!r}")
    _in_graph(train_op, "train_op", mode, graph)
    return train_op


def _loss(loss: Any, mode: str, graph: Any) -> Any:
    import tensorflow as tf

    if loss is None:
        if mode in (ModeKeys.TRAIN, ModeKeys.EVAL):
            raise _error(mode, "loss is missing; a model_fn must return one for training and eval")
        return None
    if not isinstance(loss, tf.Tensor):
        raise _error(mode, f"loss must be a tensor, got {loss!r}")
    if loss.shape.num_elements() not in (None, 1):
        raise _error(mode, f"loss must be a scalar, got shape {loss.shape}")
    _in_graph(loss, "loss", mode, graph)
    if not loss.shape.is_compatible_with([]):
        loss = tf.reshape(loss, [])
    return loss


def _predictions(predictions: Any, mode: str, graph: Any) -> Any:
    import tensorflow as tf

    if predictions is None:
        if mode == ModeKeys.PREDICT:
            raise _error(mode, "predictions are missing; a model_fn must return them for serving")
        return {}
    named = predictions if isinstance(predictions, Mapping) else {None: predictions}
    for key, value in named.items():
        what = "predictions" if key is None else f"predictions[{key!r}]"
        if not isinstance(value, tf.Tensor):
            raise _error(mode, f"{what} must be a tensor, got {value!r}")
        _in_graph(value, what, mode, graph)
    return dict(predictions) if isinstance(predictions, Mapping) else predictions


def _eval_metric_ops(metrics: Any, mode: str, graph: Any) -> dict[str, tuple[Any, Any]]:
    import tensorflow as tf

    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise _error(mode, f"eval_metric_ops must be a dict, got {metrics!r}")
    for name, pair in metrics.items():
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise _error(
                mode,
                f"eval_metric_ops[{name!r}] must be a (value, update_op) pair as "
                f"tf.compat.v1.metrics functions return, got {pair!r}",
            )
        value, update_op = pair
        if not isinstance(value, tf.Tensor):
            raise _error(mode, f"eval_metric_ops[{name!r}] value must be a tensor, got {value!r}")
        if not isinstance(update_op, tf.Tensor | tf.Operation):
            raise _error(
                mode,
                f"eval_metric_ops[{name!r}] update_op must be a tensor or an Operation, "
                f"got {update_op!r}",
            )
        _in_graph(value, f"eval_metric_ops[{name!r}] value", mode, graph)
        _in_graph(update_op, f"eval_metric_ops[{name!r}] update_op", mode, graph)
    return dict(metrics)


def _export_outputs(export_outputs: Any, predictions: Any, mode: str) -> Any:
    """In PREDICT: the serving signatures' outputs by key, `serving_default` present; in the
    other modes they are not used, and kept as given."""
    if mode != ModeKeys.PREDICT:
        return export_outputs
    if export_outputs is None:
        export_outputs = {"serving_default": PredictOutput(predictions)}
    if not isinstance(export_outputs, Mapping):
        raise _error(mode, f"export_outputs must be a dict, got {export_outputs!r}")
    for key, output in export_outputs.items():
        if not isinstance(output, ExportOutput):
            raise _error(
                mode,
                f"export_outputs[{key!r}] is {output!r}; use PredictOutput, "
                "ClassificationOutput or RegressionOutput",
            )
    try:
        return with_default_signature(export_outputs)
    except ValueError as error:
        raise _error(mode, str(error)) from error


def _hooks(hooks: Any, what: str, mode: str) -> tuple[Any, ...]:
    import tensorflow as tf

    hooks = tuple(hooks or ())
    for hook in hooks:
        if not isinstance(hook, tf.compat.v1.train.SessionRunHook):
            raise _error(mode, f"{what} must be SessionRunHooks, got {hook!r}")
    return hooks


# The Scaffold fields tf.estimator's export used, and what to do instead of each.
_SCAFFOLD_FIELDS_EXPORTED = {
    "saver": (
        "the export restores and saves every variable by name with its own sharded Saver; "
        "a Saver mapping names (var_list) or a tf.train.Checkpoint is not supported: save the "
        "checkpoint under the graph's variable names"
    ),
    "local_init_op": (
        "the export's main op initializes local variables and tables; build other local "
        "initialization into the model_fn's graph"
    ),
}


def _check_scaffold(scaffold: Any, mode: str) -> None:
    """Accept a Scaffold that sets nothing the export uses; else DefinitionError."""
    import tensorflow as tf

    if scaffold is None:
        return
    if not isinstance(scaffold, tf.compat.v1.train.Scaffold):
        raise _error(mode, f"scaffold must be a tf.compat.v1.train.Scaffold, got {scaffold!r}")
    for name, instead in _SCAFFOLD_FIELDS_EXPORTED.items():
        if getattr(scaffold, name) is not None:
            raise _error(
                mode,
                f"a Scaffold with {name} set is not supported ({instead}); return the "
                "EstimatorSpec without scaffold=, or with a Scaffold that sets neither saver "
                "nor local_init_op",
            )
