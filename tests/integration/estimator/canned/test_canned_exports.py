"""Exports of the committed TF 2.15 Estimator checkpoints by the rebuilt canned estimators.

For every canned model_dir in tests/data/estimator, `specs.py` builds the estimator with
`airflow_tf_export.estimator` in place of `tf.estimator` (default receivers), which writes a
train, eval and serve SavedModel of `model.ckpt-150`. Loaded back on TF 2.21 it must give
what the Estimator gave: its predictions, the outputs of every serving signature, the
signatures themselves (keys, methods, inputs, outputs) of its own multi-mode export, its eval
signature outputs, and, after one train step, every variable it had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from canned_support import (
    CANNED_MODELS,
    DATA,
    assert_matches,
    copy_checkpoint,
    reference,
    run_eval,
    run_train_step,
    serialized_examples,
    signature_structure,
    specs,
    supervised_values,
    write_all_modes,
)
from estimator_support import run_serving_v1


@pytest.fixture(scope="module", params=CANNED_MODELS)
def export(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(model name, its all-modes export), written once per model."""
    name = request.param
    return name, write_all_modes(name, tmp_path_factory.mktemp(name))


def test_serving_signatures_give_the_estimator_s_outputs(export: Any) -> None:
    name, export_dir = export
    expected = reference(name)
    serving = run_serving_v1(export_dir, serialized_examples(name))
    assert sorted(serving) == sorted(expected["serving"])
    for signature, outputs in serving.items():
        assert sorted(outputs) == sorted(expected["serving"][signature])
        for key, values in outputs.items():
            assert_matches(values, expected["serving"][signature][key], f"{signature} {key}")
    for key, values in serving["predict"].items():
        assert_matches(values, [row[key] for row in expected["predict"]], f"predict {key}")


@pytest.mark.parametrize("tag", ["serve", "eval", "train"])
def test_signatures_are_the_estimator_export_s(export: Any, tag: str) -> None:
    name, export_dir = export
    estimator_export = DATA / name / reference(name)["all_modes_export"]
    assert signature_structure(export_dir, tag) == signature_structure(estimator_export, tag)


def test_eval_signature_gives_the_estimator_s_outputs(export: Any) -> None:
    name, export_dir = export
    expected = reference(name)["eval"]
    outputs = run_eval(export_dir, supervised_values(name))
    assert sorted(outputs) == sorted(expected["outputs"])
    for key, value in outputs.items():
        assert_matches(value, expected["outputs"][key], key)


def test_one_train_step_gives_the_estimator_s_variables(export: Any) -> None:
    name, export_dir = export
    if name == "dnn_classifier":
        pytest.skip("dropout: test_canned_dropout.py compares with the Estimator's train graph")
    expected = reference(name)["train"]
    loss, variables = run_train_step(export_dir, supervised_values(name))
    assert_matches(loss, expected["loss_before_step"], "loss before the step")
    assert sorted(variables) == sorted(expected["variables_after_step"])
    for key, value in variables.items():
        assert_matches(value, expected["variables_after_step"][key], key)
    assert int(np.asarray(variables["global_step"])) == 151


def test_a_receiver_that_does_not_fit_the_head_fails_before_anything_is_written(
    tmp_path: Path,
) -> None:
    import tensorflow as tf

    from airflow_tf_export import estimator
    from airflow_tf_export.savedmodel import write_saved_model
    from airflow_tf_export.savedmodel.errors import DefinitionError

    name = "linear_regressor"
    spec = specs.MODELS[name]
    features = {
        key: tf.TensorSpec([None, *getattr(parsing, "shape", ())], parsing.dtype, name=key)
        for key, parsing in spec.parse_spec(tf).items()
    }
    three_targets = tf.TensorSpec([None, 3], tf.float32, name="label")
    receiver = estimator.experimental.build_raw_supervised_input_receiver_fn(
        features, three_targets
    )
    regressor = spec.build(tf, estimator, supervised_input_receiver_fn=receiver)
    export_dir = tmp_path / "export"
    with pytest.raises(
        DefinitionError, match="labels have 3 values per example; the head expects 1"
    ):
        write_saved_model(regressor, copy_checkpoint(name, tmp_path), export_dir, modes=("eval",))
    assert not export_dir.exists() or not any(export_dir.iterdir())
