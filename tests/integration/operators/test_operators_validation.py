"""Validation before publish, through the export operators on a real trained model dir.

Each staged SavedModel is loaded in the validating process (a real second Python process
with TensorFlow) and its signatures called; a failure fails the task without retry
(AirflowFailException), names the signature and output (or the feature of a bad example) and
leaves the exporter dir exactly as it was. The TF Serving warmup file is parsed here with
TensorFlow's own TFRecord reader and each request replayed through the loaded version.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from operator_support import ModelDir, load_version, run_task, task_context

from airflow_tf_export.cli.main import main as cli_main
from airflow_tf_export.example import model as example
from airflow_tf_export.operators.export import LatestExportOperator
from airflow_tf_export.savedmodel.validation import WARMUP_FILE
from airflow_tf_export.savedmodel.warmup_protos import PredictionLog
from airflow_tf_export.storage.exporter_dir import ExporterDir

DEFINITION = "airflow_tf_export.example.model:definition"


@pytest.fixture(params=["local"])
def local_model_dir(
    request: pytest.FixtureRequest,
    trained_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> ModelDir:
    from operator_support import copy_model_dir

    return copy_model_dir(request, trained_model_dir, tmp_path, monkeypatch)


def export(model_dir: ModelDir, checkpoint: str = "ckpt-60", **kwargs: Any) -> dict[str, Any]:
    op = LatestExportOperator(
        task_id="export",
        name="latest",
        model_definition=kwargs.pop("model_definition", DEFINITION),
        model_dir=model_dir.uri,
        checkpoint_path=model_dir.join(checkpoint),
        exports_to_keep=None,
        **kwargs,
    )
    state, result = run_task(op, task_context())
    assert state == "success"
    return result


def exporter_files(model_dir: ModelDir) -> dict[str, bytes]:
    root = Path(model_dir.join("export", "latest"))
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def fails_leaving_everything(model_dir: ModelDir, **kwargs: Any) -> str:
    """Export ckpt-60 after a good ckpt-40 export; it must fail and change nothing."""
    export(model_dir, "ckpt-40", validate=False)
    before = exporter_files(model_dir)
    with pytest.raises(AirflowFailException) as raised:
        export(model_dir, **kwargs)
    assert exporter_files(model_dir) == before
    return str(raised.value)


def nan_predictions(probabilities: Any) -> dict[str, Any]:
    import tensorflow as tf

    named = example.predictions(probabilities)
    named["logistic"] = named["logistic"] * tf.constant(float("nan"))
    return named


def failing_predictions(probabilities: Any) -> dict[str, Any]:
    import tensorflow as tf

    named = example.predictions(probabilities)
    with tf.control_dependencies(
        [tf.debugging.assert_negative(named["logistic"], message="logistic must be < 0")]
    ):
        named["logistic"] = tf.identity(named["logistic"])
    return named


def test_a_default_export_is_validated_on_generated_examples_and_records_it(
    local_model_dir: ModelDir, capsys: pytest.CaptureFixture[str], caplog: Any
) -> None:
    caplog.set_level("INFO")
    result = export(local_model_dir, modes=("train", "eval", "serve"), warmup_requests=True)
    validation = result["metadata"]["validation"]
    assert (validation["examples"], validation["source"]) == (2, "generated")
    assert "generated 2 from the serving input's feature spec" in caplog.text
    checked = {(s["tag"], s["key"]): s["outputs"] for s in validation["signatures"]}
    assert set(checked) == {("serve", "predict"), ("serve", "serving_default"), ("eval", "eval")}
    assert checked["serve", "serving_default"]["scores"]["shape"] == [2, 2]
    assert checked["eval", "eval"]["loss"]["shape"] == []
    assert checked["serve", "predict"]["logistic"]["digest"].startswith("sha256:")
    assert validation["warmup_requests"] == 2
    # The recorded metadata is what a later scan reads (the checksum covers it).
    (meta,) = ExporterDir(
        local_model_dir.storage, local_model_dir.join("export", "latest")
    ).committed()
    assert meta.validation is not None and meta.validation.to_dict() == validation

    assert cli_main(["versions", local_model_dir.join("export", "latest")]) == 0
    table = capsys.readouterr().out
    assert "validated" in table and "3 sig/2 ex+warmup" in table


def test_the_warmup_file_parses_and_each_request_answers_through_the_loaded_version(
    local_model_dir: ModelDir,
) -> None:
    import tensorflow as tf

    result = export(local_model_dir, warmup_requests=True)
    loaded = load_version(local_model_dir.storage, result["version_uri"])
    path = Path(result["version_uri"]) / WARMUP_FILE
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    answered = {}
    for record in records:
        log = PredictionLog.FromString(record)
        kind = log.WhichOneof("log_type")
        if kind == "classify_log":
            request = log.classify_log.request
            examples = list(request.input.example_list.examples)
            assert tf.train.Example.FromString(examples[0]).features.feature["age"].int64_list
            outputs = loaded.signatures[request.model_spec.signature_name](
                inputs=tf.constant(examples)
            )
        else:
            assert kind == "predict_log"
            request = log.predict_log.request
            feeds = {
                name: tf.constant(tf.make_ndarray(tf.make_tensor_proto(0).FromString(value)))
                for name, value in request.inputs.items()
            }
            outputs = loaded.signatures[request.model_spec.signature_name](**feeds)
        answered[request.model_spec.signature_name] = {k: v.shape for k, v in outputs.items()}
    assert answered["serving_default"]["scores"] == (2, 2)
    assert answered["predict"]["probabilities"] == (2, 2)


def test_a_nan_output_fails_the_task_naming_signature_and_output(
    local_model_dir: ModelDir,
) -> None:
    definition = dataclasses.replace(example.definition, predictions=nan_predictions)
    message = fails_leaving_everything(local_model_dir, model_definition=lambda: definition)
    assert "signature 'predict' output 'logistic' holds 2 NaN/Inf values" in message
    assert "the version is not published" in message


def test_nan_is_published_where_the_thresholds_allow_it(local_model_dir: ModelDir) -> None:
    definition = dataclasses.replace(example.definition, predictions=nan_predictions)
    result = export(
        local_model_dir,
        model_definition=lambda: definition,
        validation_thresholds={"allow_nonfinite": ["predict/logistic", "predict/probabilities"]},
    )
    assert result["exported"] is True


def process_bound_predictions(probabilities: Any) -> dict[str, Any]:
    """Predictions through a tf.py_function: the SavedModel holds only a reference to a
    Python callable of the process that wrote it."""
    import tensorflow as tf

    named = example.predictions(probabilities)
    named["logistic"] = tf.py_function(lambda x: x, [named["logistic"]], tf.float32)
    named["logistic"].set_shape([None])
    return named


def test_an_export_that_only_works_in_the_process_that_wrote_it_fails(
    local_model_dir: ModelDir,
) -> None:
    definition = dataclasses.replace(example.definition, predictions=process_bound_predictions)
    message = fails_leaving_everything(local_model_dir, model_definition=lambda: definition)
    assert "signature 'predict' (serve) failed on 2 warmup examples" in message


def test_an_output_outside_the_users_range_fails(local_model_dir: ModelDir) -> None:
    message = fails_leaving_everything(
        local_model_dir,
        validation_thresholds={"outputs": {"serving_default/scores": {"min": 0.99}}},
    )
    assert "signature 'serving_default' output 'scores' has values in [" in message
    assert "outside the threshold [0.99, inf]" in message


def test_a_signature_that_errors_fails_the_task(local_model_dir: ModelDir) -> None:
    definition = dataclasses.replace(example.definition, predictions=failing_predictions)
    message = fails_leaving_everything(local_model_dir, model_definition=lambda: definition)
    assert "signature 'predict' (serve) failed on 2 warmup examples" in message
    assert "logistic must be < 0" in message


def write_examples(path: Path, rows: list[dict[str, Any]]) -> str:
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path)) as writer:
        for row in rows:
            feature = {}
            for name, value in row.items():
                if isinstance(value, bytes):
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
                elif isinstance(value, float):
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                else:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
            example_proto = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example_proto.SerializeToString())
    return str(path)


def test_user_examples_from_a_file_are_used_and_recorded(
    local_model_dir: ModelDir, tmp_path: Path
) -> None:
    rows = [{"age": age, "language": b"german", "label": 1} for age in (20, 40, 60)]
    examples = write_examples(tmp_path / "warmup.tfrecord", rows)
    result = export(local_model_dir, validation_examples=examples, modes=("eval", "serve"))
    validation = result["metadata"]["validation"]
    assert (validation["examples"], validation["source"]) == (3, "file")
    (eval_record,) = [s for s in validation["signatures"] if s["tag"] == "eval"]
    assert eval_record["outputs"]["predictions/logistic"]["shape"] == [3]


def test_a_bad_example_names_the_feature_and_expected_dtype_before_publishing(
    local_model_dir: ModelDir, tmp_path: Path
) -> None:
    examples = write_examples(tmp_path / "bad.tfrecord", [{"age": 30.5, "language": b"german"}])
    message = fails_leaving_everything(local_model_dir, validation_examples=examples)
    assert "feature 'age' is 1 values of float" in message
    assert "expects dtype int64 with shape [] (1 values)" in message


def test_validate_false_publishes_without_a_record(local_model_dir: ModelDir) -> None:
    result = export(local_model_dir, validate=False)
    assert "validation" not in result["metadata"]
    assert json.dumps(result)
