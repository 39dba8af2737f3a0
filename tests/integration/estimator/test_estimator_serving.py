"""A serve-only export of the real Estimator checkpoint model.ckpt-150 of the custom model_fn
(made by tf.estimator on TensorFlow 2.15), read back three ways: TF2 tf.saved_model.load, a
tf.compat.v1 session loader and `saved_model_cli show --all`. Every serving signature
computes what the Estimator's own export computed (reference/outputs.json["serving"])."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from estimator_support import (
    CUSTOM,
    Export,
    assert_matches,
    reference,
    run_serving_v1,
    serialized_examples,
)

SAVED_MODEL_CLI = "/work/main/.venv/bin/saved_model_cli"
_OPS_LINE = re.compile(r"^(The MetaGraph with tag set .* contains the following ops: )(\{.*\})$")


def estimator_serving_export() -> Path:
    """The Estimator's own newest `latest` export, on which reference["serving"] was run."""
    return CUSTOM / reference()["serving_export"]


def test_the_written_model_reports_its_tags_signatures_and_global_step(
    serving_export: Export, checkpoint: str
) -> None:
    written = serving_export.written
    assert written.tags == ("serve",)
    assert dict(written.signature_keys) == {"serve": ("predict", "serving_default")}
    assert (written.checkpoint_path, written.global_step) == (checkpoint, 150)
    names = sorted(p.name for p in serving_export.path.iterdir())
    assert names == ["saved_model.pb", "variables"]


def test_every_signature_loaded_in_tf2_serves_as_the_estimator_export(
    serving_export: Export,
) -> None:
    import tensorflow as tf

    expected = reference()["serving"]
    loaded = tf.saved_model.load(str(serving_export.path))
    assert sorted(loaded.signatures) == sorted(expected)
    for key, function in loaded.signatures.items():
        (input_key,) = function.structured_input_signature[1]
        outputs = function(**{input_key: tf.constant(serialized_examples())})
        assert sorted(outputs) == sorted(expected[key])
        for name, value in outputs.items():
            assert_matches(value.numpy(), expected[key][name], f"{key}/{name}")


def test_every_signature_run_in_a_v1_session_serves_as_the_estimator_export(
    serving_export: Export,
) -> None:
    expected = reference()["serving"]
    ran = run_serving_v1(serving_export.path, serialized_examples())
    assert sorted(ran) == sorted(expected)
    for key, outputs in ran.items():
        assert sorted(outputs) == sorted(expected[key])
        for name, value in outputs.items():
            assert_matches(value, expected[key][name], f"{key}/{name}")


def test_the_predictions_equal_the_estimators_predict(serving_export: Export) -> None:
    predicted = reference()["predict"]
    outputs = run_serving_v1(serving_export.path, serialized_examples())["predict"]
    for name in ("class_id", "logits", "probability"):
        assert_matches(outputs[name], [row[name] for row in predicted], name)


def test_saved_model_cli_shows_what_it_shows_for_the_estimator_export(
    serving_export: Export,
) -> None:
    """Signatures, inputs, outputs, dtypes, shapes, tensor names and method names are the
    Estimator's; the op sets are equal (printed in no fixed order)."""
    ours = _show_all(serving_export.path)
    assert "signature_def['serving_default']" in ours[0]
    assert "Method name is: tensorflow/serving/classify" in ours[0]
    assert ours == _show_all(estimator_serving_export())


def test_the_variables_are_those_of_the_estimator_export(serving_export: Export) -> None:
    import tensorflow as tf

    ours = tf.train.list_variables(str(serving_export.path / "variables" / "variables"))
    theirs = tf.train.list_variables(str(estimator_serving_export() / "variables" / "variables"))
    assert ours == theirs
    assert ("global_step", []) in ours
    assert not [name for name, _ in ours if name.endswith("/Adam")]


@pytest.mark.parametrize("as_text", [False, True])
def test_as_text_writes_saved_model_pbtxt(
    definition: Any, checkpoint: str, tmp_path: Path, as_text: bool
) -> None:
    from airflow_tf_export.savedmodel import write_saved_model

    export_dir = tmp_path / "export"
    write_saved_model(definition, checkpoint, export_dir, as_text=as_text)
    written = {p.name for p in export_dir.iterdir()}
    assert ("saved_model.pbtxt" in written, "saved_model.pb" in written) == (as_text, not as_text)
    ran = run_serving_v1(export_dir, serialized_examples())
    assert_matches(ran["predict"]["logits"], reference()["serving"]["predict"]["logits"], "logits")


def _show_all(export_dir: Path) -> tuple[str, list[frozenset[str]]]:
    """`saved_model_cli show --all`: the text with each op-set line blanked, and the op sets."""
    shown = subprocess.run(
        [SAVED_MODEL_CLI, "show", "--all", "--dir", str(export_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines, op_sets = [], []
    for line in shown.splitlines():
        match = _OPS_LINE.match(line)
        if match is None:
            lines.append(line)
        else:
            lines.append(match.group(1))
            op_sets.append(frozenset(re.findall(r"'(\w+)'", match.group(2))))
    return "\n".join(lines), op_sets
