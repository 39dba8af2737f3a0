"""What the graph-mode writer does beyond the custom model_fn: vocabulary files as assets,
signatures left out as the Estimator left them out, receiver alternatives, and a model_fn
called only with the arguments it takes. On a real TF1 checkpoint written by a Saver
(vocab_model.py)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import vocab_model
from estimator_support import DATA

from airflow_tf_export import estimator
from airflow_tf_export.savedmodel import write_saved_model

VOCABULARY_SOURCE = DATA / "vocab" / "colors.txt"
COLORS = ["blue", "red", "purple", "green"]
SCORES = [[3.0], [1.0], [4.0], [2.0]]  # purple is out of vocabulary: the OOV bucket


@pytest.fixture
def vocab_dir(tmp_path: Path) -> tuple[Path, str]:
    return vocab_model.write_model_dir(tmp_path / "model_dir", VOCABULARY_SOURCE)


def run_signature(export_dir: Path, tag: str, key: str, values: dict[str, Any]) -> Any:
    """Run one signature in a v1 session, feeding its inputs by key."""
    import tensorflow as tf

    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, [tag], str(export_dir))
        signature = meta.signature_def[key]
        fetches = {k: graph.get_tensor_by_name(v.name) for k, v in signature.outputs.items()}
        fed = {graph.get_tensor_by_name(v.name): values[k] for k, v in signature.inputs.items()}
        return session.run(fetches, fed)


def test_vocabulary_files_are_copied_into_assets_and_used_after_loading(
    vocab_dir: tuple[Path, str], tmp_path: Path
) -> None:
    import tensorflow as tf

    vocabulary, checkpoint = vocab_dir
    export_dir = tmp_path / "export"
    definition = vocab_model.definition(vocabulary)
    written = write_saved_model(definition, checkpoint, export_dir, modes=("train", "serve"))
    assert written.global_step == vocab_model.STEP
    assert (export_dir / "assets" / "colors.txt").read_text() == VOCABULARY_SOURCE.read_text()
    # The lookup tables read the SavedModel's own copy: the original is gone.
    vocabulary.unlink()
    ran = run_signature(export_dir, "serve", "serving_default", {"color": COLORS})
    np.testing.assert_allclose(ran["score"], SCORES)
    loaded = tf.saved_model.load(str(export_dir), tags=["serve"])
    outputs = loaded.signatures["serving_default"](color=tf.constant(COLORS))
    np.testing.assert_allclose(outputs["score"].numpy(), SCORES)
    train = run_signature(
        export_dir, "train", "train", {"color": COLORS, "label": [0.0, 0.0, 0.0, 0.0]}
    )
    np.testing.assert_allclose(train["predictions/score"], SCORES)


def test_a_classify_output_on_raw_inputs_is_left_out_with_a_log_line(
    vocab_dir: tuple[Path, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def model_fn(features: Any, labels: Any, mode: str, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        spec = vocab_model.model_fn(features, labels, mode, params)
        score = spec.predictions["score"]
        classes = tf.tile(tf.constant([["high"]]), [tf.shape(score)[0], 1])
        return estimator.EstimatorSpec(
            mode,
            predictions=spec.predictions,
            export_outputs={
                "serving_default": estimator.export.PredictOutput(spec.predictions),
                "classify": estimator.export.ClassificationOutput(scores=score, classes=classes),
            },
        )

    import tensorflow as tf

    with tf.Graph().as_default():
        raw = {
            "color": tf.compat.v1.placeholder(tf.string, [None], name="color"),
            "weight": tf.compat.v1.placeholder(tf.float32, [None], name="weight"),
        }
    vocabulary, checkpoint = vocab_dir
    export_dir = tmp_path / "export"
    definition = vocab_model.definition(
        vocabulary,
        model_fn,
        serving_input_receiver_fn=estimator.export.build_raw_serving_input_receiver_fn(raw),
    )
    with caplog.at_level(logging.INFO, logger="airflow_tf_export.estimator"):
        written = write_saved_model(definition, checkpoint, export_dir)
    assert dict(written.signature_keys) == {"serve": ("serving_default",)}
    (excluded,) = [r.getMessage() for r in caplog.records if "excluded" in r.getMessage()]
    assert "'classify'" in excluded and "one string tensor" in excluded
    assert "'color'" in excluded and "'weight'" in excluded
    ran = run_signature(
        export_dir, "serve", "serving_default", {"color": COLORS, "weight": [1.0] * 4}
    )
    np.testing.assert_allclose(ran["score"], SCORES)


def test_receiver_alternatives_give_more_signatures(
    vocab_dir: tuple[Path, str], tmp_path: Path
) -> None:
    def serving_input_receiver_fn() -> Any:
        import tensorflow as tf

        serialized = tf.compat.v1.placeholder(tf.string, [None], name="examples")
        parsed = tf.io.parse_example(serialized, {"color": tf.io.FixedLenFeature([1], tf.string)})
        return estimator.export.ServingInputReceiver(
            parsed, {"examples": serialized}, {"raw": {"color": parsed["color"]}}
        )

    vocabulary, checkpoint = vocab_dir
    export_dir = tmp_path / "export"
    definition = vocab_model.definition(
        vocabulary, serving_input_receiver_fn=serving_input_receiver_fn
    )
    written = write_saved_model(definition, checkpoint, export_dir)
    assert dict(written.signature_keys) == {"serve": ("raw:serving_default", "serving_default")}
    examples = [_example(color) for color in COLORS]
    by_examples = run_signature(export_dir, "serve", "serving_default", {"examples": examples})
    np.testing.assert_allclose(by_examples["score"], SCORES)
    raw = run_signature(
        export_dir, "serve", "raw:serving_default", {"color": [[c] for c in COLORS]}
    )
    np.testing.assert_allclose(raw["score"], SCORES)


def test_a_model_fn_gets_only_the_arguments_it_takes(
    vocab_dir: tuple[Path, str], tmp_path: Path
) -> None:
    """tf.estimator's calling rules: `features` always, the others only when named; `config`
    is None; the params are a fresh copy in every mode."""
    calls: list[dict[str, Any]] = []

    def model_fn(features: Any, labels: Any, mode: str, config: Any, params: Any) -> Any:
        calls.append({"mode": mode, "config": config, "labels": labels, "params": dict(params)})
        params["feature_columns"] = None  # must not reach the next mode
        kept = {"feature_columns": vocab_model.feature_columns(str(vocabulary))}
        return vocab_model.model_fn(features, labels, mode, kept)

    vocabulary, checkpoint = vocab_dir
    definition = vocab_model.definition(vocabulary, model_fn)
    write_saved_model(definition, checkpoint, tmp_path / "export", modes=("serve", "train"))
    assert [call["mode"] for call in calls] == ["train", "infer"]
    assert [call["config"] for call in calls] == [None, None]
    assert calls[0]["labels"] is not None and calls[1]["labels"] is None
    assert all(call["params"]["feature_columns"] is not None for call in calls)

    def features_only(features: Any) -> Any:
        return vocab_model.model_fn(
            features,
            None,
            estimator.ModeKeys.PREDICT,
            {"feature_columns": vocab_model.feature_columns(str(vocabulary))},
        )

    written = write_saved_model(
        estimator.Estimator(
            features_only, serving_input_receiver_fn=definition.serving_input_receiver_fn
        ),
        checkpoint,
        tmp_path / "features_only",
    )
    assert written.signature_keys == {"serve": ("serving_default",)}


def _example(color: str) -> bytes:
    import tensorflow as tf

    feature = {"color": tf.train.Feature(bytes_list=tf.train.BytesList(value=[color.encode()]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
