"""The model_fn API on real TF1 graph tensors: EstimatorSpec's checks per mode, the export
outputs' rules (tf.estimator's as_signature_def rules) and the receivers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_tf_export import estimator
from airflow_tf_export.estimator.export_outputs import SupervisedOutput
from airflow_tf_export.savedmodel.errors import DefinitionError

ModeKeys = estimator.ModeKeys
export = estimator.export


@pytest.fixture
def tf() -> Iterator[Any]:
    """TensorFlow with a fresh default graph (model_fns run in graph mode)."""
    import tensorflow as tf

    with tf.Graph().as_default():
        yield tf


def scalar(tf: Any, value: float = 1.0) -> Any:
    return tf.constant(value)


def test_train_needs_loss_and_train_op_eval_needs_loss_predict_needs_predictions(tf: Any) -> None:
    loss = scalar(tf)
    with pytest.raises(DefinitionError, match="mode 'train': train_op is missing"):
        estimator.EstimatorSpec(ModeKeys.TRAIN, loss=loss)
    with pytest.raises(DefinitionError, match="mode 'train': loss is missing"):
        estimator.EstimatorSpec(ModeKeys.TRAIN, train_op=tf.no_op())
    with pytest.raises(DefinitionError, match="mode 'eval': loss is missing"):
        estimator.EstimatorSpec(ModeKeys.EVAL)
    with pytest.raises(DefinitionError, match="mode 'infer': predictions are missing"):
        estimator.EstimatorSpec(ModeKeys.PREDICT)
    spec = estimator.EstimatorSpec(ModeKeys.EVAL, loss=loss)
    assert (spec.predictions, spec.eval_metric_ops, spec.train_op) == ({}, {}, None)


def test_a_mode_that_is_no_mode_key_is_named(tf: Any) -> None:
    with pytest.raises(DefinitionError, match="mode 'serve' is not a ModeKeys value"):
        estimator.EstimatorSpec("serve", predictions=scalar(tf))


def test_loss_must_be_a_scalar_tensor_of_the_graph(tf: Any) -> None:
    spec = estimator.EstimatorSpec(ModeKeys.EVAL, loss=tf.constant([2.0]))
    assert spec.loss.shape.as_list() == []
    with pytest.raises(DefinitionError, match="loss must be a scalar, got shape"):
        estimator.EstimatorSpec(ModeKeys.EVAL, loss=tf.constant([1.0, 2.0]))
    with pytest.raises(DefinitionError, match=r"loss must be a tensor, got 0\.5"):
        estimator.EstimatorSpec(ModeKeys.EVAL, loss=0.5)
    with tf.Graph().as_default():
        elsewhere = tf.constant(1.0, name="elsewhere")
    with pytest.raises(DefinitionError, match="loss 'elsewhere:0' is not in the graph"):
        estimator.EstimatorSpec(ModeKeys.EVAL, loss=elsewhere)


def test_train_op_may_be_an_operation_a_tensor_or_a_variable(tf: Any) -> None:
    loss = scalar(tf)
    variable = tf.compat.v1.get_variable("v", [], initializer=tf.zeros_initializer())
    assert estimator.EstimatorSpec(ModeKeys.TRAIN, loss=loss, train_op=variable).train_op is (
        variable.op
    )
    with pytest.raises(DefinitionError, match="train_op must be an Operation or a tensor"):
        estimator.EstimatorSpec(ModeKeys.TRAIN, loss=loss, train_op="step")


def test_predictions_and_metrics_are_checked_by_key(tf: Any) -> None:
    loss = scalar(tf)
    with pytest.raises(DefinitionError, match=r"predictions\['p'\] must be a tensor, got 3"):
        estimator.EstimatorSpec(ModeKeys.EVAL, loss=loss, predictions={"p": 3})
    with pytest.raises(DefinitionError, match=r"eval_metric_ops\['auc'\] must be a \(value"):
        estimator.EstimatorSpec(ModeKeys.EVAL, loss=loss, eval_metric_ops={"auc": loss})
    with pytest.raises(DefinitionError, match="update_op must be a tensor or an Operation"):
        estimator.EstimatorSpec(ModeKeys.EVAL, loss=loss, eval_metric_ops={"m": (loss, 1)})
    mean = tf.compat.v1.metrics.mean(loss)
    spec = estimator.EstimatorSpec(ModeKeys.EVAL, loss=loss, eval_metric_ops={"mean": mean})
    assert spec.eval_metric_ops == {"mean": mean}


def test_hooks_are_accepted_and_checked(tf: Any) -> None:
    hook = tf.compat.v1.train.StopAtStepHook(last_step=10)
    loss = scalar(tf)
    spec = estimator.EstimatorSpec(
        ModeKeys.TRAIN, loss=loss, train_op=tf.no_op(), training_hooks=[hook]
    )
    assert spec.training_hooks == (hook,)
    with pytest.raises(DefinitionError, match="training_hooks must be SessionRunHooks"):
        estimator.EstimatorSpec(
            ModeKeys.TRAIN, loss=loss, train_op=tf.no_op(), training_hooks=["log"]
        )


def test_a_scaffold_setting_nothing_the_export_uses_is_accepted(tf: Any) -> None:
    """tf.estimator's export used only a Scaffold's saver and local_init_op; the training
    fields (init ops, init_fn, ready and summary ops) are accepted and not used."""
    loss = scalar(tf)
    training_only = tf.compat.v1.train.Scaffold(
        init_op=tf.no_op(name="init"),
        init_fn=lambda scaffold, session: None,
        ready_op=tf.constant([], dtype=tf.string),
        summary_op=tf.no_op(name="summaries"),
    )
    for scaffold in (None, tf.compat.v1.train.Scaffold(), training_only):
        spec = estimator.EstimatorSpec(
            ModeKeys.TRAIN, loss=loss, train_op=tf.no_op(), scaffold=scaffold
        )
        assert spec.loss is loss


def test_a_scaffold_with_a_saver_or_local_init_op_is_refused_naming_it(tf: Any) -> None:
    loss = scalar(tf)
    tf.compat.v1.get_variable("w", [], initializer=tf.zeros_initializer())
    for scaffold, field in (
        (tf.compat.v1.train.Scaffold(saver=tf.compat.v1.train.Saver()), "saver"),
        (tf.compat.v1.train.Scaffold(local_init_op=tf.no_op()), "local_init_op"),
    ):
        with pytest.raises(DefinitionError) as raised:
            estimator.EstimatorSpec(ModeKeys.EVAL, loss=loss, scaffold=scaffold)
        message = str(raised.value)
        assert message.startswith(
            f"EstimatorSpec for mode 'eval': a Scaffold with {field} set is not supported"
        )
        assert "return the EstimatorSpec without scaffold=" in message
    not_a_scaffold = r"scaffold must be a tf\.compat\.v1\.train\.Scaffold, got \{"
    with pytest.raises(DefinitionError, match=not_a_scaffold):
        estimator.EstimatorSpec(ModeKeys.EVAL, loss=loss, scaffold={"saver": None})


def test_predict_export_outputs_follow_the_default_signature_rules(tf: Any) -> None:
    predictions = {"p": scalar(tf)}
    spec = estimator.EstimatorSpec(ModeKeys.PREDICT, predictions=predictions)
    (default,) = spec.export_outputs.values()
    assert list(spec.export_outputs) == ["serving_default"]
    assert isinstance(default, export.PredictOutput) and default.outputs == predictions

    only = export.PredictOutput(predictions)
    spec = estimator.EstimatorSpec(
        ModeKeys.PREDICT, predictions=predictions, export_outputs={"predict": only}
    )
    assert spec.export_outputs == {"predict": only, "serving_default": only}

    with pytest.raises(DefinitionError, match=r"several export outputs \(a, b\) but none is"):
        estimator.EstimatorSpec(
            ModeKeys.PREDICT, predictions=predictions, export_outputs={"a": only, "b": only}
        )
    with pytest.raises(DefinitionError, match=r"export_outputs\['a'\] is 3; use PredictOutput"):
        estimator.EstimatorSpec(ModeKeys.PREDICT, predictions=predictions, export_outputs={"a": 3})


def test_predict_output_names_a_single_tensor_output_and_joins_tuple_keys(tf: Any) -> None:
    value = scalar(tf)
    assert export.PredictOutput(value).outputs == {"output": value}
    assert export.PredictOutput({("head", "probabilities"): value}).outputs == {
        "head/probabilities": value
    }
    with pytest.raises(DefinitionError, match="PredictOutput output 'x' must be a tensor"):
        export.PredictOutput({"x": [1.0]})


def test_classification_and_regression_outputs_check_their_dtypes(tf: Any) -> None:
    with pytest.raises(DefinitionError, match="needs scores, classes, or both"):
        export.ClassificationOutput()
    with pytest.raises(DefinitionError, match="scores must be a float tensor"):
        export.ClassificationOutput(scores=tf.constant([[1]]))
    with pytest.raises(DefinitionError, match="classes must be a string tensor"):
        export.ClassificationOutput(classes=tf.constant([[1.0]]))
    with pytest.raises(DefinitionError, match="RegressionOutput value must be a float tensor"):
        export.RegressionOutput(tf.constant([1]))


def test_classify_and_regress_signatures_take_one_string_input(tf: Any) -> None:
    scores = tf.constant([[0.2, 0.8]])
    examples = tf.compat.v1.placeholder(tf.string, [None], name="examples")
    other = tf.compat.v1.placeholder(tf.float32, [None], name="other")
    classify = export.ClassificationOutput(scores=scores)
    signature = classify.as_signature_def({"examples": examples})
    assert signature.method_name == "tensorflow/serving/classify"
    assert list(signature.inputs) == ["inputs"] and list(signature.outputs) == ["scores"]
    with pytest.raises(ValueError, match="one string tensor"):
        classify.as_signature_def({"examples": examples, "other": other})
    regress = export.RegressionOutput(tf.constant([0.5]))
    assert regress.as_signature_def({"x": examples}).method_name == "tensorflow/serving/regress"
    with pytest.raises(ValueError, match=r"the receiver gives \{'other': 'Tensor\(float32\)'\}"):
        regress.as_signature_def({"other": other})


def test_supervised_outputs_are_prefixed_as_the_estimator_prefixed_them(tf: Any) -> None:
    loss = scalar(tf)
    value = scalar(tf, 2.0)
    update = tf.no_op(name="update")
    output = SupervisedOutput(
        "tensorflow/supervised/eval",
        loss=loss,
        predictions={"probability": value, "predictions_raw": value},
        metrics={"auc": (value, value), "metrics_total": (value, update)},
    )
    assert sorted(output.outputs) == [
        "loss",
        "metrics/auc/update_op",
        "metrics/auc/value",
        "metrics_total/update_op",
        "metrics_total/value",
        "predictions/probability",
        "predictions_raw",
    ]
    wrapper = output.outputs["metrics_total/update_op"]
    assert wrapper.op.name.startswith("metric_op_wrapper")
    assert update in wrapper.op.control_inputs
    single = SupervisedOutput(
        "tensorflow/supervised/training", loss=loss, predictions=value, metrics={}
    )
    assert sorted(single.outputs) == ["loss", "predictions"]


def test_serving_receivers_key_single_tensors_and_check_their_values(tf: Any) -> None:
    feature = tf.compat.v1.placeholder(tf.float32, [None])
    receiver = export.ServingInputReceiver(feature, feature)
    assert receiver.features == {"feature": feature}
    assert receiver.receiver_tensors == {"input": feature}
    assert receiver.receiver_tensors_alternatives is None
    sparse = tf.sparse.SparseTensor([[0, 0]], [1.0], [1, 1])
    assert export.ServingInputReceiver({3: sparse}, {"x": feature}).features == {3: sparse}
    with pytest.raises(DefinitionError, match="receiver_tensor keys must be strings, got 3"):
        export.ServingInputReceiver(feature, {3: feature})
    with pytest.raises(DefinitionError, match="feature 'age' must be a Tensor, SparseTensor"):
        export.ServingInputReceiver({"age": [1.0]}, feature)
    with pytest.raises(DefinitionError, match="features must be given"):
        export.ServingInputReceiver(None, feature)
    with pytest.raises(DefinitionError, match="receiver_tensors_alternatives must be a dict"):
        export.ServingInputReceiver(feature, feature, [feature])
    alternative = export.ServingInputReceiver(feature, feature, {"raw": feature})
    assert alternative.receiver_tensors_alternatives == {"raw": {"input": feature}}


def test_supervised_receivers_pass_features_and_labels_as_given(tf: Any) -> None:
    feature = tf.compat.v1.placeholder(tf.float32, [None])
    label = tf.compat.v1.placeholder(tf.int64, [None])
    receiver = export.SupervisedInputReceiver(feature, label, {"x": feature, "label": label})
    assert receiver.features is feature and receiver.labels is label
    with pytest.raises(DefinitionError, match="label 'y' must be a Tensor"):
        export.SupervisedInputReceiver(feature, {"y": 1}, feature)


def test_the_parsing_receiver_fn_parses_serialized_examples(tf: Any) -> None:
    spec = {"age": tf.io.FixedLenFeature([1], tf.float32), "tag": tf.io.VarLenFeature(tf.string)}
    receiver = export.build_parsing_serving_input_receiver_fn(spec, default_batch_size=4)()
    (examples,) = receiver.receiver_tensors.values()
    assert list(receiver.receiver_tensors) == ["examples"]
    assert examples.op.name == "input_example_tensor" and examples.shape.as_list() == [4]
    assert receiver.features["age"].shape.as_list() == [4, 1]
    assert isinstance(receiver.features["tag"], tf.sparse.SparseTensor)


def test_raw_receiver_fns_make_placeholders_like_their_templates(tf: Any) -> None:
    with tf.Graph().as_default():
        age = tf.compat.v1.placeholder(tf.float32, [None, 1], name="age")
        label = tf.compat.v1.placeholder(tf.int64, [None], name="label")
    spec = tf.TensorSpec([None, 2], tf.float32, name="x")
    serving = export.build_raw_serving_input_receiver_fn({"age": age, "x": spec}, 8)()
    assert serving.features == serving.receiver_tensors
    assert {k: (t.op.name, t.shape.as_list()) for k, t in serving.receiver_tensors.items()} == {
        "age": ("age", [8, 1]),
        "x": ("x", [8, 2]),
    }
    with tf.Graph().as_default():
        supervised = estimator.experimental.build_raw_supervised_input_receiver_fn(age, label)()
    assert sorted(supervised.receiver_tensors) == ["input", "label"]
    assert supervised.features.op.name == "age" and supervised.labels.op.name == "label"
    with pytest.raises(DefinitionError, match=r"a tensor or tf\.TensorSpec per input, got 3"):
        export.build_raw_serving_input_receiver_fn({"age": 3})()
