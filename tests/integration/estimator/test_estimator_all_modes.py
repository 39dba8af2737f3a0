"""A multi-mode export (train, eval, serve) of the custom model_fn's real Estimator checkpoint,
compared with the Estimator's own experimental_export_all_saved_models export of the same
checkpoint (reference/all_modes/<ts>/) and with what its train and eval graphs computed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from estimator_support import (
    Export,
    all_modes_reference_dir,
    assert_matches,
    reference,
    run_eval,
    run_serving_v1,
    run_train_step,
    serialized_examples,
)


def saved_model(export_dir: Path) -> Any:
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((export_dir / "saved_model.pb").read_bytes())
    return proto


def signatures_by_tag(export_dir: Path) -> dict[tuple[str, ...], dict[str, Any]]:
    """Tag set -> signature key -> (method name, inputs, outputs), each input and output by
    key with its dtype, shape and tensor name."""
    return {
        tuple(meta.meta_info_def.tags): {
            key: (
                signature.method_name,
                {k: (v.dtype, str(v.tensor_shape), v.name) for k, v in signature.inputs.items()},
                {k: (v.dtype, str(v.tensor_shape), v.name) for k, v in signature.outputs.items()},
            )
            for key, signature in meta.signature_def.items()
        }
        for meta in saved_model(export_dir).meta_graphs
    }


def test_one_meta_graph_per_mode_in_estimator_order_sharing_one_variables_dir(
    all_modes_export: Export, checkpoint: str
) -> None:
    written = all_modes_export.written
    assert written.tags == ("train", "eval", "serve")
    assert dict(written.signature_keys) == {
        "train": ("train",),
        "eval": ("eval",),
        "serve": ("predict", "serving_default"),
    }
    assert (written.checkpoint_path, written.global_step) == (checkpoint, 150)
    tags = [tuple(m.meta_info_def.tags) for m in saved_model(all_modes_export.path).meta_graphs]
    assert tags == [("train",), ("eval",), ("serve",)]
    assert sorted(p.name for p in all_modes_export.path.iterdir()) == [
        "saved_model.pb",
        "variables",
    ]
    assert sorted(p.name for p in (all_modes_export.path / "variables").iterdir()) == [
        "variables.data-00000-of-00001",
        "variables.index",
    ]


def test_signatures_equal_the_estimators_multi_mode_export(all_modes_export: Export) -> None:
    ours = signatures_by_tag(all_modes_export.path)
    assert ours == signatures_by_tag(all_modes_reference_dir())
    assert ours[("train",)]["train"][0] == "tensorflow/supervised/training"
    assert ours[("eval",)]["eval"][0] == "tensorflow/supervised/eval"


def test_collections_and_variables_equal_the_estimators(all_modes_export: Export) -> None:
    """Every MetaGraphDef has the Estimator's collections (main op, train op, variables,
    tables); variables/ holds the train graph's variables, optimizer slots included."""
    import tensorflow as tf

    def collections(export_dir: Path) -> list[list[str]]:
        return [sorted(m.collection_def) for m in saved_model(export_dir).meta_graphs]

    ours = collections(all_modes_export.path)
    assert ours == collections(all_modes_reference_dir())
    assert "saved_model_train_op" in ours[0] and "saved_model_main_op" in ours[2]

    def variables(export_dir: Path) -> list[tuple[str, list[int]]]:
        return tf.train.list_variables(str(export_dir / "variables" / "variables"))

    assert variables(all_modes_export.path) == variables(all_modes_reference_dir())


def test_the_eval_signature_computes_the_estimators_eval_outputs(
    all_modes_export: Export,
) -> None:
    expected = reference()["eval"]["outputs"]
    ran = run_eval(all_modes_export.path)
    assert sorted(ran) == sorted(expected)
    for key, value in ran.items():
        assert_matches(value, expected[key], key)


def test_one_train_step_gives_the_estimators_loss_and_variables(all_modes_export: Export) -> None:
    expected = reference()["train"]
    loss, variables = run_train_step(all_modes_export.path)
    assert_matches(loss, expected["loss_before_step"], "loss before the step")
    assert sorted(variables) == sorted(expected["variables_after_step"])
    for name, value in variables.items():
        assert_matches(value, expected["variables_after_step"][name], name)
    assert variables["global_step"] == 151


def test_the_serve_meta_graph_serves_as_the_estimator_export(all_modes_export: Export) -> None:
    expected = reference()["serving"]
    ran = run_serving_v1(all_modes_export.path, serialized_examples())
    for key, outputs in ran.items():
        for name, value in outputs.items():
            assert_matches(value, expected[key][name], f"{key}/{name}")


def test_variables_are_found_by_name_in_the_loaded_train_graph(
    all_modes_export: Export, checkpoint: str
) -> None:
    """The seed's sample: `loader.load(sess, [TRAINING], dir)`, then a weight by tensor name;
    its value is the checkpoint's."""
    import numpy as np
    import tensorflow as tf

    saved = tf.train.load_checkpoint(checkpoint)
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        tf.compat.v1.saved_model.loader.load(session, ["train"], str(all_modes_export.path))
        handle = graph.get_tensor_by_name("hidden_0/kernel:0")
        assert handle.op.type == "VarHandleOp"
        (kernel,) = [v for v in tf.compat.v1.global_variables() if v.op is handle.op]
        assert kernel.shape.as_list() == [6, 4]
        np.testing.assert_array_equal(session.run(kernel), saved.get_tensor("hidden_0/kernel"))
        assert session.run(tf.compat.v1.train.get_global_step()) == 150
