"""What docs/estimator-migration.md says is supported, and what not, checked on checkpoints the
real TensorFlow 2.15 Estimator wrote (tests/data/estimator_support: tf.compat.v1 canned
estimators with partitioned variables, model_fns with tf.keras layers and with a partitioned
variable) and on TensorFlow 2.21 itself. Exports that work compute what the Estimator's
`predict` and `evaluate` computed."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airflow_tf_export import estimator
from airflow_tf_export.savedmodel import CheckpointMismatchError, DefinitionError, write_saved_model

SUPPORT = Path(__file__).resolve().parents[2] / "data" / "estimator_support"
if str(SUPPORT) not in sys.path:
    sys.path.insert(0, str(SUPPORT))

import support_models  # noqa: E402

TOLERANCE = 1e-5


def reference(case: str) -> dict[str, Any]:
    return json.loads((SUPPORT / case / "reference.json").read_text())


def checkpoint(case: str) -> str:
    return str(SUPPORT / case / "model_dir" / reference(case)["checkpoint"])


def fixed_features(case: str) -> dict[str, np.ndarray]:
    features = reference(case)["features"]
    return {
        "age": np.asarray(features["age"], np.float32),
        "language": np.asarray(features["language"], object),
    }


def serialized(features: dict[str, np.ndarray]) -> list[bytes]:
    import tensorflow as tf

    examples = []
    for age, language in zip(features["age"], features["language"], strict=True):
        feature = {
            "age": tf.train.Feature(float_list=tf.train.FloatList(value=[float(age)])),
            "language": tf.train.Feature(bytes_list=tf.train.BytesList(value=[language.encode()])),
        }
        examples.append(tf.train.Example(features=tf.train.Features(feature=feature)))
    return [e.SerializeToString() for e in examples]


def raw_receivers() -> dict[str, Any]:
    """One placeholder per feature, and the label, for the custom model_fns."""
    import tensorflow as tf

    with tf.Graph().as_default():
        features = {
            "age": tf.compat.v1.placeholder(tf.float32, [None], name="age"),
            "language": tf.compat.v1.placeholder(tf.string, [None], name="language"),
        }
        label = tf.compat.v1.placeholder(tf.int64, [None], name="label")
    return {
        "serving_input_receiver_fn": estimator.export.build_raw_serving_input_receiver_fn(features),
        "supervised_input_receiver_fn": (
            estimator.experimental.build_raw_supervised_input_receiver_fn(features, label)
        ),
    }


def run_signature(export_dir: Path, tag: str, key: str, values: dict[str, Any]) -> dict[str, Any]:
    """Signature `key` of the `tag` MetaGraphDef run on `values` by input key: update ops
    (outputs not ending in /value) first, then the rest."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, [tag], str(export_dir))
        signature = meta.signature_def[key]
        feed = {graph.get_tensor_by_name(signature.inputs[k].name): v for k, v in values.items()}
        tensors = {k: graph.get_tensor_by_name(v.name) for k, v in signature.outputs.items()}
        ran = session.run({k: t for k, t in tensors.items() if not k.endswith("/value")}, feed)
        ran.update(session.run({k: t for k, t in tensors.items() if k.endswith("/value")}, feed))
        return ran


def assert_close(actual: Any, expected: Any, what: str) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, np.float64),
        np.asarray(expected, np.float64),
        atol=TOLERANCE,
        err_msg=what,
    )


def v1_definition(case: str) -> Any:
    import tensorflow as tf

    build = getattr(support_models, case)
    return build(tf, estimator, loss_reduction="sum")


@pytest.mark.parametrize(
    "case", ["v1_linear_classifier", "v1_dnn_classifier", "v1_combined_classifier"]
)
def test_a_v1_canned_estimator_with_partitioned_variables_exports_serve_and_eval(
    case: str, tmp_path: Path
) -> None:
    """The TF 2 class of the same name, without the partitioner argument and with
    loss_reduction="sum" (the v1 default), serves the v1 Estimator's predictions and
    evaluates to its loss."""
    export_dir = tmp_path / "export"
    write_saved_model(v1_definition(case), checkpoint(case), export_dir, modes=("eval", "serve"))
    expected = reference(case)
    features = fixed_features(case)

    predicted = run_signature(export_dir, "serve", "predict", {"examples": serialized(features)})
    for key in ("logits", "logistic", "probabilities"):
        assert_close(predicted[key], expected["predictions"][key], f"{case} {key}")
    assert predicted["class_ids"].tolist() == expected["predictions"]["class_ids"]

    # The canned train and eval inputs are the parsed features: a numeric column is [batch, 1].
    labelled = {
        "age": features["age"].reshape(-1, 1),
        "language": features["language"],
        "label": np.asarray(expected["labels"]),
    }
    evaluated = run_signature(export_dir, "eval", "eval", labelled)
    evaluation = expected["evaluation"]
    assert_close(evaluated["loss"], evaluation["loss"], f"{case} loss")
    average = evaluated["metrics/average_loss/value"]
    assert_close(average, evaluation["average_loss"], f"{case} average_loss")


@pytest.mark.parametrize(
    ("case", "optimizer_variable"),
    [
        ("v1_linear_classifier", "training/Ftrl/linear/linear_model/age/weights/accumulator"),
        ("v1_dnn_classifier", "training/Adagrad/dnn/hiddenlayer_0/kernel/accumulator"),
        ("v1_combined_classifier", "training/Adagrad/dnn/hiddenlayer_0/kernel/accumulator"),
    ],
)
def test_the_train_mode_of_a_v1_canned_estimator_is_refused_naming_the_optimizer_variables(
    case: str, optimizer_variable: str, tmp_path: Path
) -> None:
    export_dir = tmp_path / "export"
    with pytest.raises(CheckpointMismatchError) as raised:
        write_saved_model(v1_definition(case), checkpoint(case), export_dir, modes=("train",))
    assert "missing from the checkpoint: training/" in str(raised.value)
    assert optimizer_variable in str(raised.value)
    assert not export_dir.exists()


def test_v1_partitioner_arguments_are_not_taken() -> None:
    import tensorflow as tf

    partitioner = tf.compat.v1.fixed_size_partitioner(2)
    with pytest.raises(TypeError, match="partitioner"):
        support_models.v1_linear_classifier(tf, estimator, partitioner=partitioner)
    with pytest.raises(TypeError, match="input_layer_partitioner"):
        support_models.v1_dnn_classifier(tf, estimator, input_layer_partitioner=partitioner)


@pytest.mark.parametrize("case", ["keras_layers_named", "partitioned_model_fn"])
def test_model_fns_with_named_keras_layers_or_partitioned_variables_export_every_mode(
    case: str, tmp_path: Path
) -> None:
    """Every mode exports; serve and eval compute what the Estimator computed, and the
    train op runs from the restored variables."""
    import tensorflow as tf

    params = {"named": True} if case == "keras_layers_named" else None
    model_fn = getattr(support_models, case.replace("_named", "_model_fn"))(tf, estimator)
    definition = estimator.Estimator(model_fn, params, **raw_receivers())
    export_dir = tmp_path / "export"
    written = write_saved_model(
        definition, checkpoint(case), export_dir, modes=("train", "eval", "serve")
    )
    expected = reference(case)
    features = fixed_features(case)
    labelled = {**features, "label": np.asarray(expected["labels"])}

    served = run_signature(export_dir, "serve", "serving_default", features)
    assert_close(served["probability"], expected["predictions"]["probability"], case)
    evaluated = run_signature(export_dir, "eval", "eval", labelled)
    assert_close(evaluated["loss"], expected["evaluation"]["loss"], f"{case} loss")
    mean = evaluated["metrics/mean_probability/value"]
    assert_close(mean, expected["evaluation"]["mean_probability"], f"{case} mean_probability")

    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["train"], str(export_dir))
        signature = meta.signature_def["train"]
        feed = {graph.get_tensor_by_name(signature.inputs[k].name): v for k, v in labelled.items()}
        (train_op,) = graph.get_collection("saved_model_train_op")
        step = tf.compat.v1.train.get_global_step(graph)
        assert session.run(step) == written.global_step == 40
        session.run(train_op, feed)
        assert session.run(step) == 41


def test_unnamed_keras_layers_are_a_checkpoint_mismatch(tmp_path: Path) -> None:
    """Keras 3 numbers unnamed layers process-wide, not per graph as Keras 2 did: the names
    the graph asks for are not the checkpoint's."""
    import tensorflow as tf

    definition = estimator.Estimator(
        support_models.keras_layers_model_fn(tf, estimator), {"named": False}, **raw_receivers()
    )
    export_dir = tmp_path / "export"
    with pytest.raises(CheckpointMismatchError) as raised:
        write_saved_model(definition, checkpoint("keras_layers_unnamed"), export_dir)
    message = str(raised.value)
    missing = message.split("missing from the checkpoint: ", 1)[1].split(";", 1)[0]
    assert "dense_1/kernel" in message and "dense_1/kernel" not in missing
    assert not export_dir.exists()


def test_a_scaffold_with_a_saver_is_refused_and_training_arguments_are_type_errors() -> None:
    import tensorflow as tf

    with tf.Graph().as_default():
        tf.compat.v1.get_variable("w", [1])
        saver = tf.compat.v1.train.Saver()
        with pytest.raises(DefinitionError, match="a Scaffold with saver set is not supported"):
            estimator.EstimatorSpec(
                estimator.ModeKeys.PREDICT,
                predictions={"w": tf.constant([1.0])},
                scaffold=tf.compat.v1.train.Scaffold(saver=saver),
            )
    model_fn = support_models.partitioned_model_fn(tf, estimator)
    for argument in ("model_dir", "config", "warm_start_from"):
        with pytest.raises(TypeError, match=argument):
            estimator.Estimator(model_fn, **{argument: "/models/census"})


def test_a_single_serving_feature_tensor_reaches_the_model_fn_as_features_feature() -> None:
    import tensorflow as tf

    with tf.Graph().as_default():
        examples = tf.compat.v1.placeholder(tf.string, [None], name="examples")
        receiver = estimator.export.ServingInputReceiver(examples, {"examples": examples})
    assert receiver.features == {"feature": examples}


def test_a_keras_metric_object_in_eval_metric_ops_is_a_definition_error_naming_it() -> None:
    import tensorflow as tf

    with tf.Graph().as_default():
        loss = tf.constant(0.5)
        with pytest.raises(DefinitionError, match=r"eval_metric_ops\['auc'\]"):
            estimator.EstimatorSpec(
                estimator.ModeKeys.EVAL, loss=loss, eval_metric_ops={"auc": tf.keras.metrics.AUC()}
            )


def test_tf_compat_v1_layers_and_rnn_cells_are_gone_with_keras_3() -> None:
    """TensorFlow 2.21's own behaviour, which model_fns using them meet."""
    import tensorflow as tf

    with tf.Graph().as_default():
        inputs = tf.compat.v1.placeholder(tf.float32, [None, 3])
        with pytest.raises(AttributeError, match="not available with Keras 3"):
            tf.compat.v1.layers.dense(inputs, 2)
        with pytest.raises(AttributeError, match="not available with Keras 3"):
            tf.compat.v1.nn.rnn_cell.BasicLSTMCell(3)
