"""The operators on Keras weights files (`model.save_weights("ckpt-<step>.weights.h5")`), on
local disk and the GCS emulator: an explicit checkpoint_path naming the file resolves, the
file alone is downloaded, and the published SavedModel computes what the Keras model does.
Keras writes no `checkpoint` state file, so a model dir of weights files is only exported
through an explicit checkpoint_path (given directly or in the eval result), and checkpoint
retention leaves weights files alone.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.execution_time.context import OutletEventAccessors
from operator_support import (
    ModelDir,
    classify,
    copy_model_dir,
    load_version,
    write_eval_events,
)

from airflow_tf_export.example import model as example
from airflow_tf_export.operators.export import BestExportOperator, LatestExportOperator
from airflow_tf_export.operators.retention import RetentionOperator
from airflow_tf_export.savedmodel.definition import ModelDefinition

KERAS_DEFINITION = example.keras_weights_definition
AGES = [19, 25, 45, 70, 33]
LANGUAGES = ["english", "german", "french", "italian", "spanish"]


def keras_definition() -> ModelDefinition:
    return KERAS_DEFINITION


def context() -> Any:
    ti = SimpleNamespace(dag_id="dag", run_id="run-1", task_id="export", try_number=1, map_index=-1)
    return {"ti": ti, "outlet_events": OutletEventAccessors()}


@pytest.fixture(scope="session")
def keras_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, Any]]:
    """ckpt-7.weights.h5 and ckpt-14.weights.h5 of the example model, each with its own
    random weights, and the Keras model's probabilities for AGES/LANGUAGES at each step."""
    import tensorflow as tf

    model_dir = tmp_path_factory.mktemp("keras-weights") / "model"
    model_dir.mkdir()
    features = {"age": tf.constant(AGES, tf.int64), "language": tf.constant(LANGUAGES)}
    expected = {}
    rng = np.random.default_rng(0)
    for step in (7, 14):
        model = example.build_model()
        for variable in model.weights:
            variable.assign(rng.normal(size=variable.shape).astype(variable.dtype))
        model.save_weights(str(model_dir / f"ckpt-{step}.weights.h5"))
        expected[step] = model(features, training=False).numpy()[:, 0]
    assert expected[7].tolist() != expected[14].tolist()
    assert sorted(p.name for p in model_dir.iterdir()) == [
        "ckpt-14.weights.h5",
        "ckpt-7.weights.h5",
    ]
    return model_dir, expected


@pytest.fixture(params=["local", "gcs"])
def weights_model_dir(
    request: pytest.FixtureRequest,
    keras_weights_dir: tuple[Path, dict[int, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> ModelDir:
    return copy_model_dir(request, keras_weights_dir[0], tmp_path, monkeypatch)


def assert_serves_keras_outputs(model_dir: ModelDir, version_uri: str, expected: Any) -> None:
    """The published SavedModel's scores are [1 - p, p] for the Keras model's p."""
    scores = classify(load_version(model_dir.storage, version_uri), AGES, LANGUAGES)["scores"]
    np.testing.assert_allclose(scores.numpy()[:, 1], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(scores.numpy()[:, 0], 1.0 - expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("given", ["relative", "absolute"])
def test_latest_exports_an_explicit_keras_weights_file(
    weights_model_dir: ModelDir, keras_weights_dir: tuple[Path, dict[int, Any]], given: str
) -> None:
    _, expected = keras_weights_dir
    path = (
        "ckpt-7.weights.h5" if given == "relative" else weights_model_dir.join("ckpt-7.weights.h5")
    )
    op = LatestExportOperator(
        task_id="export",
        name="latest",
        model_definition=keras_definition,
        model_dir=weights_model_dir.uri,
        checkpoint_path=path,
    )
    result = op.execute(context())
    assert result["exported"] is True
    assert result["checkpoint_path"] == weights_model_dir.join("ckpt-7.weights.h5")
    assert result["global_step"] == 7
    assert result["metadata"]["global_step"] == 7
    assert_serves_keras_outputs(weights_model_dir, result["version_uri"], expected[7])


def test_best_exports_the_keras_weights_file_its_eval_result_names(
    weights_model_dir: ModelDir, keras_weights_dir: tuple[Path, dict[int, Any]]
) -> None:
    _, expected = keras_weights_dir
    results = {}
    for step, loss in ((7, 0.6), (14, 0.4)):
        op = BestExportOperator(
            task_id="export",
            name="best",
            model_definition=keras_definition,
            model_dir=weights_model_dir.uri,
            eval_result={
                "step": step,
                "metrics": {"loss": loss},
                "checkpoint_path": f"ckpt-{step}.weights.h5",
            },
        )
        results[step] = op.execute(context())
    for step in (7, 14):
        assert results[step]["exported"] is True, results[step]["reason"]
        assert results[step]["global_step"] == step
        assert results[step]["checkpoint_path"] == weights_model_dir.join(f"ckpt-{step}.weights.h5")
        assert_serves_keras_outputs(weights_model_dir, results[step]["version_uri"], expected[step])


def test_without_checkpoint_path_the_failure_says_weights_files_need_one(
    weights_model_dir: ModelDir,
) -> None:
    op = LatestExportOperator(
        task_id="export",
        name="latest",
        model_definition=keras_definition,
        model_dir=weights_model_dir.uri,
    )
    with pytest.raises(AirflowFailException, match="no checkpoint in") as raised:
        op.execute(context())
    assert "Keras weights files" in str(raised.value)
    assert "explicit checkpoint_path" in str(raised.value)


def test_checkpoint_retention_leaves_weights_files_alone(
    weights_model_dir: ModelDir, tmp_path: Path
) -> None:
    """Checkpoint retention deletes TF checkpoints only: weights files in a model dir may
    count epochs rather than global steps, or be pretrained weights."""
    events = tmp_path / "events"
    write_eval_events(events, {7: {"loss": 0.6}, 14: {"loss": 0.4}})
    weights_model_dir.storage.upload_dir(events / "eval", weights_model_dir.join("eval"))

    done = RetentionOperator(
        task_id="retention", model_dir=weights_model_dir.uri, checkpoints_to_keep=1
    ).execute(context())

    assert done["checkpoints"]["keep"] == [] and done["checkpoints"]["delete"] == []
    names = {e.name for e in weights_model_dir.storage.list_dir(weights_model_dir.uri)}
    assert {"ckpt-7.weights.h5", "ckpt-14.weights.h5"} <= names


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("ckpt-8.weights.h5", "not found: {path} does not exist"),
        ("model.weights.h5", "is not named for its global step"),
    ],
    ids=["missing", "no-step"],
)
def test_a_bad_keras_weights_path_fails_naming_it(
    weights_model_dir: ModelDir, name: str, message: str
) -> None:
    if name == "model.weights.h5":
        weights_model_dir.storage.write_bytes(weights_model_dir.join(name), b"")
    path = weights_model_dir.join(name)
    op = LatestExportOperator(
        task_id="export",
        name="latest",
        model_definition=keras_definition,
        model_dir=weights_model_dir.uri,
        checkpoint_path=name,
    )
    with pytest.raises(AirflowFailException) as raised:
        op.execute(context())
    assert message.format(path=path) in str(raised.value)
    assert repr(path) in str(raised.value)
