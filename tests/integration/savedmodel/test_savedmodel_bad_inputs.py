"""Bad export input: each case fails with an error naming the bad value, and writes nothing."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import pytest
from savedmodel_support import TrainedExample

from airflow_tf_export.example import model as example
from airflow_tf_export.savedmodel import (
    CheckpointError,
    CheckpointMismatchError,
    ClassificationOutput,
    DefinitionError,
    KerasWeights,
    PredictOutput,
    resolve_checkpoint,
    write_saved_model,
)


def _variant_model(*, vocabulary: int = 4, extra_layer: bool = False, age: bool = True) -> Any:
    """The example's architecture with one change, for checkpoint mismatches."""
    import keras

    age_input = keras.Input(shape=(), dtype="int64", name="age")
    language = keras.Input(shape=(), dtype="string", name="language")
    one_hot = keras.layers.StringLookup(
        vocabulary=[f"lang{i}" for i in range(vocabulary)],
        output_mode="one_hot",
        name="language_lookup",
    )(language)
    terms = [keras.layers.Dense(1, use_bias=False, name="language_weights")(one_hot)]
    if age:
        scaled = keras.layers.Reshape((1,))(keras.layers.Rescaling(0.01)(age_input))
        terms.insert(0, keras.layers.Dense(1, use_bias=False, name="age_weights")(scaled))
    logit = keras.layers.Add()(terms) if len(terms) > 1 else terms[0]
    probability = keras.layers.Dense(1, activation="sigmoid", name="logistic")(logit)
    if extra_layer:
        probability = keras.layers.Dense(1, activation="sigmoid", name="extra")(probability)
    return keras.Model({"age": age_input, "language": language}, probability)


def test_a_missing_checkpoint_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    missing = str(tmp_path / "model_dir" / "ckpt-99")
    with pytest.raises(CheckpointError, match=f"no checkpoint at {missing}"):
        write_saved_model(example.definition, missing, tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_an_empty_model_dir_has_no_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=f"no checkpoint in {tmp_path}"):
        resolve_checkpoint(str(tmp_path), None)


def test_resolving_the_latest_checkpoint_of_a_real_model_dir(
    trained_example: TrainedExample,
) -> None:
    assert resolve_checkpoint(str(trained_example.model_dir), None) == trained_example.latest


def test_an_unreadable_checkpoint_is_named(trained_example: TrainedExample, tmp_path: Path) -> None:
    source = Path(trained_example.latest)
    for path in source.parent.glob(source.name + ".*"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / (source.name + ".index")).write_bytes(b"not an index")
    broken = str(tmp_path / source.name)
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {broken}"):
        write_saved_model(example.definition, broken, tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_a_truncated_data_file_is_named(trained_example: TrainedExample, tmp_path: Path) -> None:
    """The checkpoint reader raises IndexError here; it must still be a CheckpointError (bad
    input: the operators fail without retrying a checkpoint that can never be read)."""
    source = Path(trained_example.latest)
    for path in source.parent.glob(source.name + ".*"):
        shutil.copy(path, tmp_path / path.name)
    (data,) = tmp_path.glob(source.name + ".data-*")
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    broken = str(tmp_path / source.name)
    with pytest.raises(CheckpointError, match=f"cannot read checkpoint {broken}"):
        write_saved_model(example.definition, broken, tmp_path / "export")
    assert not (tmp_path / "export").exists()


@pytest.mark.parametrize(
    ("assets_extra", "expected"),
    [
        ({"x.txt": None}, "assets_extra source for 'x.txt' must be a local file path, got None"),
        ({1: "/etc/hostname"}, "assets_extra destination 1 must be a path string"),
    ],
)
def test_assets_extra_of_the_wrong_type_are_named(
    trained_example: TrainedExample, tmp_path: Path, assets_extra: Any, expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        write_saved_model(
            example.definition,
            trained_example.latest,
            tmp_path / "export",
            assets_extra=assets_extra,
        )
    assert not (tmp_path / "export").exists()


@pytest.mark.parametrize(
    ("variant", "error_part", "names"),
    [
        ({"extra_layer": True}, "missing", ["extra/kernel", "extra/bias"]),
        (
            {"vocabulary": 7},
            "mismatched",
            ["language_weights/kernel", "checkpoint [5, 1], model [8, 1]"],
        ),
        ({"age": False}, "unexpected", ["model/_operations/"]),
    ],
)
def test_variables_not_matching_the_model_are_named(
    trained_example: TrainedExample,
    tmp_path: Path,
    variant: dict[str, Any],
    error_part: str,
    names: list[str],
) -> None:
    definition = dataclasses.replace(
        example.definition, build_model=lambda: _variant_model(**variant)
    )
    with pytest.raises(CheckpointMismatchError) as raised:
        write_saved_model(definition, trained_example.latest, tmp_path / "export")
    error = raised.value
    assert error.path == trained_example.latest
    assert trained_example.latest in str(error)
    listed = " ".join(getattr(error, error_part))
    for name in names:
        assert name in listed
        assert name in str(error)
    assert not (tmp_path / "export").exists()


def test_a_checkpoint_without_a_step_is_rejected(restored_example: Any, tmp_path: Path) -> None:
    import tensorflow as tf

    unnumbered = tf.train.Checkpoint(model=restored_example).write(str(tmp_path / "final"))
    with pytest.raises(CheckpointError, match="cannot tell the global step"):
        write_saved_model(example.definition, unnumbered, tmp_path / "export")


@pytest.mark.parametrize(
    ("variant", "error_part", "names"),
    [
        (
            {"extra_layer": True},
            "unexpected",
            ["layers/dense_3/vars/0 [1, 1]", "layers/dense_3/vars/1 [1]"],
        ),
        ({"age": False}, "missing", ["layers/dense_2/vars/0", "layers/dense_2/vars/1"]),
        (
            {"vocabulary": 2},
            "mismatched",
            ["layers/dense_1/vars/0: checkpoint [3, 1], model [5, 1]"],
        ),
    ],
)
def test_keras_weights_that_do_not_fit_are_named(
    tmp_path: Path, variant: dict[str, Any], error_part: str, names: list[str]
) -> None:
    weights = tmp_path / "ckpt-3.weights.h5"
    _variant_model(**variant).save_weights(str(weights))
    definition = dataclasses.replace(example.definition, checkpoint=KerasWeights())
    with pytest.raises(CheckpointMismatchError) as raised:
        write_saved_model(definition, str(weights), tmp_path / "export")
    assert raised.value.path == str(weights)
    assert getattr(raised.value, error_part) == tuple(names)


def test_an_unreadable_keras_weights_file_is_named(tmp_path: Path) -> None:
    weights = tmp_path / "ckpt-3.weights.h5"
    weights.write_bytes(b"not hdf5")
    definition = dataclasses.replace(example.definition, checkpoint=KerasWeights())
    with pytest.raises(CheckpointError, match=f"cannot read Keras weights file {weights}"):
        write_saved_model(definition, str(weights), tmp_path / "export")


@pytest.mark.parametrize(
    ("destination", "source_name", "expected"),
    [
        ("/abs/file.txt", "present.txt", "is absolute"),
        ("../escape.txt", "present.txt", "contains '..'"),
        ("", "present.txt", "is empty"),
        ("fine.txt", "missing.txt", "is not an existing local file"),
    ],
)
def test_bad_assets_extra_are_rejected_before_anything_is_written(
    trained_example: TrainedExample,
    tmp_path: Path,
    destination: str,
    source_name: str,
    expected: str,
) -> None:
    (tmp_path / "present.txt").write_text("x")
    with pytest.raises(ValueError, match=expected):
        write_saved_model(
            example.definition,
            trained_example.latest,
            tmp_path / "export",
            assets_extra={destination: str(tmp_path / source_name)},
        )
    assert not (tmp_path / "export").exists()


def test_a_non_empty_export_dir_is_refused_and_kept(
    trained_example: TrainedExample, tmp_path: Path
) -> None:
    export = tmp_path / "export"
    export.mkdir()
    (export / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match=f"export_dir {export} must not exist or be an empty"):
        write_saved_model(example.definition, trained_example.latest, export)
    assert [p.name for p in export.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("existed", [False, True])
def test_a_failure_while_writing_leaves_export_dir_as_it_was(
    trained_example: TrainedExample, tmp_path: Path, existed: bool
) -> None:
    """/proc/self/mem is a regular file whose first bytes cannot be read: the copy of
    assets_extra, the last writing step, fails after the SavedModel was written."""
    export = tmp_path / "export"
    if existed:
        export.mkdir()
    with pytest.raises(OSError, match="Input/output error"):
        write_saved_model(
            example.definition,
            trained_example.latest,
            export,
            assets_extra={"mem": "/proc/self/mem"},
        )
    assert export.exists() == existed
    assert not existed or not any(export.iterdir())


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"export_outputs": {"serving_default": ClassificationOutput(scores="classes")}},
            "scores must be float32, but prediction 'classes' is string",
        ),
        (
            {"export_outputs": {"serving_default": PredictOutput(keys=("nope",))}},
            "names prediction 'nope', but the predictions are",
        ),
        ({"loss": None}, "cannot export mode 'train': set loss"),
    ],
)
def test_definition_errors_are_named_before_anything_is_written(
    trained_example: TrainedExample, tmp_path: Path, changes: dict[str, Any], expected: str
) -> None:
    definition = dataclasses.replace(example.definition, **changes)
    with pytest.raises(DefinitionError, match=expected):
        write_saved_model(
            definition, trained_example.latest, tmp_path / "export", modes=("serve", "train")
        )
    assert not (tmp_path / "export").exists()


def test_unknown_modes_are_named(trained_example: TrainedExample, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown export mode 'predict'"):
        write_saved_model(
            example.definition, trained_example.latest, tmp_path / "export", modes=("predict",)
        )


def test_predictions_that_are_not_a_dict_are_named(
    trained_example: TrainedExample, tmp_path: Path
) -> None:
    definition = dataclasses.replace(example.definition, predictions=lambda outputs: outputs)
    with pytest.raises(TypeError, match="predictions must return a dict of tensors"):
        write_saved_model(definition, trained_example.latest, tmp_path / "export")
    assert not (tmp_path / "export").exists()
