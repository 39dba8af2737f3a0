"""Exports loaded back by the real loaders: TF2, v1 sessions and saved_model_cli."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from savedmodel_support import (
    Export,
    TrainedExample,
    halving_gradient_model,
    model_checkpoint,
    model_probabilities,
    serialized_examples,
    single_input_definition,
)

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel.writer import write_saved_model

INIT_OP = "__saved_model_init_op"
EXPECTED_KEYS = {"train": {"train"}, "eval": {"eval"}, "serve": {"serving_default", "predict"}}
SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"


def _saved_model_proto(path: Path) -> Any:
    from tensorflow.core.protobuf import saved_model_pb2

    return saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes())


@contextlib.contextmanager
def v1_session(path: Path, tag: str) -> Iterator[tuple[Any, Any]]:
    """A TF1 session with the MetaGraphDef of `tag` loaded: (session, meta_graph_def)."""
    import tensorflow as tf

    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, [tag], str(path))
        yield session, meta_graph


def _feed(signature_def: Any, values: dict[str, Any]) -> dict[str, Any]:
    return {info.name: values[name] for name, info in signature_def.inputs.items()}


def _fetches(signature_def: Any) -> dict[str, str]:
    return {name: info.name for name, info in signature_def.outputs.items()}


def _read_variable(session: Any, name: str) -> np.ndarray:
    import tensorflow as tf

    handle = session.graph.get_operation_by_name(name).outputs[0]
    dtype = session.graph.get_operation_by_name(name).get_attr("dtype")
    return np.asarray(session.run(tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype)))


def _supervised_values(trained: TrainedExample) -> dict[str, Any]:
    return {**trained.features, "label": trained.labels}


def test_written_model_reports_what_was_written(
    multi_mode_export: Export, trained_example: TrainedExample
) -> None:
    written = multi_mode_export.written
    assert written.tags == ("train", "eval", "serve")
    assert written.signature_keys == {
        "train": ("train",),
        "eval": ("eval",),
        "serve": ("predict", "serving_default"),
    }
    assert written.checkpoint_path == trained_example.latest
    assert written.global_step == 20


def test_one_metagraph_per_mode_sharing_one_variables_dir(multi_mode_export: Export) -> None:
    proto = _saved_model_proto(multi_mode_export.path)
    assert [list(graph.meta_info_def.tags) for graph in proto.meta_graphs] == [
        ["train"],
        ["eval"],
        ["serve"],
    ]
    methods = {
        key: signature.method_name
        for graph in proto.meta_graphs
        for key, signature in graph.signature_def.items()
        if key != INIT_OP
    }
    assert methods == {
        "train": "tensorflow/supervised/training",
        "eval": "tensorflow/supervised/eval",
        "serving_default": "tensorflow/serving/classify",
        "predict": "tensorflow/serving/predict",
    }
    files = sorted(p.name for p in (multi_mode_export.path / "variables").iterdir())
    assert files == ["variables.data-00000-of-00001", "variables.index"]
    assert {graph.saver_def.restore_op_name for graph in proto.meta_graphs} == {
        proto.meta_graphs[0].saver_def.restore_op_name
    }


@pytest.mark.parametrize("tag", ["train", "eval", "serve"])
def test_every_tag_loads_with_the_tf2_loader(multi_mode_export: Export, tag: str) -> None:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(multi_mode_export.path), tags=[tag])
    assert set(loaded.signatures) - {INIT_OP} == EXPECTED_KEYS[tag]


@pytest.mark.parametrize("tag", ["train", "eval", "serve"])
def test_every_tag_loads_in_a_v1_session(multi_mode_export: Export, tag: str) -> None:
    with v1_session(multi_mode_export.path, tag) as (_, meta_graph):
        assert list(meta_graph.meta_info_def.tags) == [tag]
        assert set(meta_graph.signature_def) - {INIT_OP} == EXPECTED_KEYS[tag]


def test_a_mode_not_requested_is_absent(serving_export: Export) -> None:
    import tensorflow as tf

    assert serving_export.written.tags == ("serve",)
    assert [
        list(g.meta_info_def.tags) for g in _saved_model_proto(serving_export.path).meta_graphs
    ] == [["serve"]]
    with pytest.raises(ValueError, match="incompatible argument to `tags`"):
        tf.saved_model.load(str(serving_export.path), tags=["train"])
    with (
        pytest.raises(RuntimeError, match="could not be found"),
        v1_session(serving_export.path, "train"),
    ):
        pass


def test_serving_signatures_match_the_restored_model_in_tf2(
    serving_export: Export, trained_example: TrainedExample, restored_example: Any
) -> None:
    import tensorflow as tf

    expected = model_probabilities(restored_example, trained_example.features)
    loaded = tf.saved_model.load(str(serving_export.path), tags=["serve"])
    examples = tf.constant(serialized_examples(trained_example.features))
    classified = loaded.signatures["serving_default"](inputs=examples)
    np.testing.assert_allclose(classified["scores"][:, 1], expected, atol=1e-6)
    np.testing.assert_allclose(classified["scores"][:, 0], 1 - expected, atol=1e-6)
    assert classified["classes"].numpy().tolist()[0] == [b"0", b"1"]
    predicted = loaded.signatures["predict"](examples=examples)
    np.testing.assert_allclose(predicted["logistic"], expected, atol=1e-6)
    assert predicted["classes"].numpy().tolist() == [b"1" if p > 0.5 else b"0" for p in expected]


def test_the_loaded_serving_signature_keeps_the_models_custom_gradients(
    tmp_path: Path,
) -> None:
    """Differentiating a loaded single-mode export gives the model's own gradient, as for a
    plain tf.saved_model.save (the export released the registrations it traced, so the
    loader can only use the gradient functions the SavedModel holds)."""
    import tensorflow as tf

    model = halving_gradient_model()
    checkpoint = model_checkpoint(model, tmp_path / "model_dir", step=1)
    write_saved_model(
        single_input_definition(halving_gradient_model), checkpoint, tmp_path / "export"
    )
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    served = loaded.signatures["serving_default"]
    x = tf.constant([[1.0, -2.0, 3.0], [0.5, 0.5, 0.5]])

    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        exported = served(x=x)["output"]
        own = model({"x": x})

    np.testing.assert_allclose(exported.numpy(), own.numpy(), atol=1e-6)
    np.testing.assert_allclose(tape.gradient(exported, x), tape.gradient(own, x), atol=1e-6)


def test_a_custom_gradient_tensorflow_cannot_save_does_not_fail_the_export(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A gradient closing over a tensor made outside the trace: tf.saved_model.save refuses
    to save it, so the export is saved without custom gradients, and says so."""
    import keras
    import tensorflow as tf

    scale = tf.constant(0.5)

    class ScaleGradient(keras.layers.Layer):
        def call(self, x: Any) -> Any:
            @tf.custom_gradient
            def scale_gradient(x: Any) -> Any:
                return tf.identity(x), lambda upstream: upstream * scale

            return scale_gradient(x)

    def build_model() -> Any:
        inputs = keras.Input(shape=(3,), name="x")
        hidden = ScaleGradient()(keras.layers.Dense(4, activation="relu")(inputs))
        return keras.Model({"x": inputs}, keras.layers.Dense(1)(hidden))

    model = build_model()
    checkpoint = model_checkpoint(model, tmp_path / "model_dir", step=1)
    with caplog.at_level("WARNING"):
        write_saved_model(single_input_definition(build_model), checkpoint, tmp_path / "export")

    assert "saved without its custom gradients" in caplog.text
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    x = tf.constant([[1.0, -2.0, 3.0]])
    np.testing.assert_allclose(
        loaded.signatures["serving_default"](x=x)["output"], model({"x": x}), atol=1e-6
    )


def test_serving_signatures_match_the_restored_model_in_a_v1_session(
    multi_mode_export: Export, trained_example: TrainedExample, restored_example: Any
) -> None:
    expected = model_probabilities(restored_example, trained_example.features)
    examples = serialized_examples(trained_example.features)
    with v1_session(multi_mode_export.path, "serve") as (session, meta_graph):
        predict = meta_graph.signature_def["predict"]
        outputs = session.run(_fetches(predict), _feed(predict, {"examples": examples}))
        classify = meta_graph.signature_def["serving_default"]
        scores = session.run(_fetches(classify), _feed(classify, {"inputs": examples}))["scores"]
    np.testing.assert_allclose(outputs["logistic"], expected, atol=1e-6)
    np.testing.assert_allclose(scores[:, 1], expected, atol=1e-6)


def test_the_train_signature_steps_the_optimizer_in_a_v1_session(
    multi_mode_export: Export, trained_example: TrainedExample
) -> None:
    with v1_session(multi_mode_export.path, "train") as (session, meta_graph):
        train = meta_graph.signature_def["train"]
        feed = _feed(train, _supervised_values(trained_example))
        before = _read_variable(session, "age_weights/kernel")
        assert _read_variable(session, "global_step") == 20
        losses = [float(session.run(_fetches(train), feed)["loss"]) for _ in range(5)]
        after = _read_variable(session, "age_weights/kernel")
        assert _read_variable(session, "global_step") == 25
        (train_op,) = meta_graph.collection_def["saved_model_train_op"].node_list.value
        session.run(train_op, feed)
        assert _read_variable(session, "global_step") == 26
    assert losses[-1] < losses[0], losses
    assert not np.array_equal(before, after)


def test_the_train_signature_steps_the_optimizer_in_tf2(
    multi_mode_export: Export, trained_example: TrainedExample
) -> None:
    import tensorflow as tf

    train = tf.saved_model.load(str(multi_mode_export.path), tags=["train"]).signatures["train"]
    inputs = {name: tf.constant(v) for name, v in _supervised_values(trained_example).items()}
    losses = [float(train(**inputs)["loss"]) for _ in range(5)]
    assert losses[-1] < losses[0], losses


def test_the_eval_signature_returns_loss_metrics_and_predictions(
    multi_mode_export: Export, trained_example: TrainedExample, restored_example: Any
) -> None:
    import tensorflow as tf

    expected = model_probabilities(restored_example, trained_example.features)
    with v1_session(multi_mode_export.path, "eval") as (session, meta_graph):
        evaluate = meta_graph.signature_def["eval"]
        feed = _feed(evaluate, _supervised_values(trained_example))
        outputs = session.run(_fetches(evaluate), feed)
    assert set(outputs) == {
        "loss",
        "metrics/accuracy/value",
        "predictions/logistic",
        "predictions/probabilities",
        "predictions/class_ids",
        "predictions/classes",
        "predictions/all_classes",
    }
    labels = tf.constant(trained_example.labels)
    expected_loss = float(example.loss(labels, tf.constant(expected[:, None])))
    assert outputs["loss"] == pytest.approx(expected_loss, abs=1e-6)
    accuracy = np.mean((expected > 0.5).astype(np.int64) == trained_example.labels)
    assert outputs["metrics/accuracy/value"] == pytest.approx(accuracy, abs=1e-6)
    np.testing.assert_allclose(outputs["predictions/logistic"], expected, atol=1e-6)


def test_the_seed_example_train_and_predict_loaded_with_the_training_tag(
    trained_example: TrainedExample, restored_example: Any, tmp_path: Path
) -> None:
    """export_all_saved_models' sample: TRAIN + PREDICT, read the age weights in a v1 session."""
    written = write_saved_model(
        example.definition, trained_example.latest, tmp_path / "export", modes=("infer", "train")
    )
    assert written.tags == ("train", "serve")
    with v1_session(tmp_path / "export", "train") as (session, _):
        weights = _read_variable(session, "age_weights/kernel")
    checkpoint_weights = restored_example.get_layer("age_weights").kernel.numpy()
    np.testing.assert_array_equal(weights, checkpoint_weights)
    with (
        pytest.raises(RuntimeError, match="could not be found"),
        v1_session(tmp_path / "export", "eval"),
    ):
        pass


def test_saved_model_cli_shows_and_runs_serving_default(
    multi_mode_export: Export,
    trained_example: TrainedExample,
    restored_example: Any,
    tmp_path: Path,
) -> None:
    shown = subprocess.run(
        [str(SAVED_MODEL_CLI), "show", "--dir", str(multi_mode_export.path), "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for tag in ("train", "eval", "serve"):
        assert f"MetaGraphDef with tag-set: '{tag}'" in shown
    assert "signature_def['serving_default']" in shown
    assert "Method name is: tensorflow/serving/classify" in shown
    subprocess.run(
        [
            str(SAVED_MODEL_CLI),
            "run",
            "--dir",
            str(multi_mode_export.path),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_examples",
            'inputs=[{"age":[30],"language":["french"]},{"age":[70],"language":["tamil"]}]',
            "--outdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    features = {
        "age": np.array([30, 70], dtype=np.int64),
        "language": np.array([b"french", b"tamil"]),
    }
    expected = model_probabilities(restored_example, features)
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy")[:, 1], expected, atol=1e-6)


def test_the_fingerprint_describes_the_rewritten_saved_model(
    multi_mode_export: Export, tmp_path: Path
) -> None:
    import shutil

    import tensorflow as tf
    from tensorflow.python.saved_model import fingerprinting_utils

    copy = tmp_path / "copy"
    shutil.copytree(multi_mode_export.path, copy)
    (copy / "fingerprint.pb").unlink()
    fingerprinting_utils.write_fingerprint(str(copy))
    written = tf.saved_model.experimental.read_fingerprint(str(multi_mode_export.path))
    recomputed = tf.saved_model.experimental.read_fingerprint(str(copy))
    assert written.saved_model_checksum == recomputed.saved_model_checksum
    assert written.signature_def_hash == recomputed.signature_def_hash
