"""Bad input to an Estimator export is refused before anything is written, with an error
naming the bad value; `export_dir` stays absent (or empty, when it existed) and the
checkpoint's files are unchanged. On copies of the real Estimator checkpoint."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import custom_model
import pytest
import vocab_model
from estimator_support import (
    CHECKPOINT_NAME,
    CUSTOM,
    DATA,
    build_definition,
    file_digests,
)

from airflow_tf_export import estimator
from airflow_tf_export.savedmodel import (
    CheckpointError,
    CheckpointMismatchError,
    DefinitionError,
    write_saved_model,
)


@pytest.fixture
def model_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh copy of the model_dir (no exports); its files must be unchanged afterwards."""
    copy = tmp_path / "model_dir"
    shutil.copytree(CUSTOM / "model_dir", copy, ignore=shutil.ignore_patterns("export"))
    before = file_digests(copy)
    yield copy
    assert file_digests(copy) == before


@pytest.fixture(params=["absent", "empty"])
def export_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """The export dir, absent or an existing empty dir: left as it was."""
    path = tmp_path / "export"
    if request.param == "empty":
        path.mkdir()
    yield path
    if request.param == "empty":
        assert path.is_dir() and not any(path.iterdir())
    else:
        assert not path.exists()


def checkpoint_of(model_dir: Path) -> str:
    return str(model_dir / CHECKPOINT_NAME)


def wrapping(change: Callable[[Any, str], Any]) -> Callable[..., Any]:
    """The custom model_fn with its EstimatorSpec rebuilt by `change(spec, mode)`."""

    def model_fn(features: Any, labels: Any, mode: str, params: dict[str, Any]) -> Any:
        return change(custom_model.model_fn(features, labels, mode, params), mode)

    return model_fn


def test_a_checkpoint_lacking_the_graphs_variables_names_them_with_shapes(
    model_dir: Path, export_dir: Path
) -> None:
    definition = build_definition(hidden_units=[4, 3])
    with pytest.raises(CheckpointMismatchError) as raised:
        write_saved_model(definition, checkpoint_of(model_dir), export_dir)
    message = str(raised.value)
    assert checkpoint_of(model_dir) in message
    assert "missing from the checkpoint: hidden_1/bias float32 [3], hidden_1/kernel float32" in (
        message
    )
    assert "logits/kernel: checkpoint float32 [4, 1], graph float32 [3, 1]" in message
    # For orientation, the checkpoint's variables the graph did not find (the Adam slots).
    assert "in the checkpoint but not in the model:" in message
    assert "hidden_0/kernel/Adam float32 [6, 4]" in message
    assert raised.value.missing == ("hidden_1/bias float32 [3]", "hidden_1/kernel float32 [4, 3]")


def test_a_shape_mismatch_is_named(model_dir: Path, export_dir: Path) -> None:
    with pytest.raises(CheckpointMismatchError, match="shape or dtype differs") as raised:
        write_saved_model(build_definition(hidden_units=[5]), checkpoint_of(model_dir), export_dir)
    assert raised.value.mismatched == (
        "hidden_0/bias: checkpoint float32 [4], graph float32 [5]",
        "hidden_0/kernel: checkpoint float32 [6, 4], graph float32 [6, 5]",
        "logits/kernel: checkpoint float32 [4, 1], graph float32 [5, 1]",
    )
    assert raised.value.missing == ()


def test_a_train_graph_needing_optimizer_slots_the_checkpoint_lacks_is_refused(
    tmp_path: Path, export_dir: Path
) -> None:
    """A checkpoint without Adam slots serves, but cannot become a train graph with Adam."""
    vocabulary, checkpoint = vocab_model.write_model_dir(
        tmp_path / "vocab", DATA / "vocab" / "colors.txt"
    )

    def adam_model_fn(features: Any, labels: Any, mode: str, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        spec = vocab_model.model_fn(features, labels, mode, params)
        if mode != estimator.ModeKeys.TRAIN:
            return spec
        train_op = tf.compat.v1.train.AdamOptimizer().minimize(spec.loss)
        return estimator.EstimatorSpec(mode, loss=spec.loss, train_op=train_op)

    definition = vocab_model.definition(vocabulary, adam_model_fn)
    with pytest.raises(CheckpointMismatchError) as raised:
        write_saved_model(definition, checkpoint, export_dir, modes=("train", "serve"))
    assert "weights/Adam float32 [4, 1]" in raised.value.missing
    assert "beta1_power float32 []" in raised.value.missing


@pytest.mark.parametrize(
    ("mode", "change", "expected"),
    [
        (
            "eval",
            lambda spec, mode: estimator.EstimatorSpec(mode, predictions=spec.predictions),
            "EstimatorSpec for mode 'eval': loss is missing",
        ),
        (
            "train",
            lambda spec, mode: estimator.EstimatorSpec(mode, loss=spec.loss),
            "EstimatorSpec for mode 'train': train_op is missing",
        ),
        (
            "train",
            lambda spec, mode: estimator.EstimatorSpec(mode, train_op=spec.train_op),
            "EstimatorSpec for mode 'train': loss is missing",
        ),
        (
            "serve",
            lambda spec, mode: estimator.EstimatorSpec(mode, export_outputs=spec.export_outputs),
            "EstimatorSpec for mode 'infer': predictions are missing",
        ),
        (
            "serve",
            lambda spec, mode: {"predictions": spec.predictions},
            "model_fn returned a dict in mode 'infer'; it must return an EstimatorSpec",
        ),
        (
            "eval",
            lambda spec, mode: estimator.EstimatorSpec(
                estimator.ModeKeys.TRAIN, loss=spec.loss, train_op=spec.loss.op
            ),
            "called in mode 'eval' but returned an EstimatorSpec for mode 'train'",
        ),
    ],
)
def test_an_incomplete_estimator_spec_names_the_mode_and_what_is_missing(
    model_dir: Path,
    export_dir: Path,
    mode: str,
    change: Callable[[Any, str], Any],
    expected: str,
) -> None:
    definition = build_definition()
    broken = estimator.Estimator(
        wrapping(change),
        params=definition.params,
        serving_input_receiver_fn=definition.serving_input_receiver_fn,
        supervised_input_receiver_fn=definition.supervised_input_receiver_fn,
    )
    with pytest.raises(DefinitionError, match=expected):
        write_saved_model(broken, checkpoint_of(model_dir), export_dir, modes=(mode,))


def test_a_model_fn_passing_a_scaffold_exports_unless_it_sets_a_saver(
    model_dir: Path, export_dir: Path
) -> None:
    """scaffold= as tf.estimator took it: a default Scaffold exports as if none were given;
    one with a custom Saver is refused before anything is written."""
    import tensorflow as tf

    def with_scaffold(saver: bool) -> Callable[[Any, str], Any]:
        def change(spec: Any, mode: str) -> Any:
            scaffold = tf.compat.v1.train.Scaffold(
                saver=tf.compat.v1.train.Saver() if saver else None
            )
            return estimator.EstimatorSpec(
                mode,
                predictions=spec.predictions,
                export_outputs=spec.export_outputs,
                scaffold=scaffold,
            )

        return change

    definition = build_definition()

    def exported(saver: bool, into: Path) -> Any:
        changed = estimator.Estimator(
            wrapping(with_scaffold(saver)),
            params=definition.params,
            serving_input_receiver_fn=definition.serving_input_receiver_fn,
        )
        return write_saved_model(changed, checkpoint_of(model_dir), into)

    with pytest.raises(DefinitionError, match="a Scaffold with saver set is not supported"):
        exported(True, export_dir)
    written = exported(False, model_dir.parent / "with_default_scaffold")
    assert (written.global_step, written.tags) == (150, ("serve",))


def test_a_later_mode_failing_writes_nothing_of_the_earlier_ones(
    model_dir: Path, export_dir: Path
) -> None:
    """Every graph is built before anything is written: a serve graph without predictions
    fails the export whose train graph was fine."""

    def change(spec: Any, mode: str) -> Any:
        if mode == estimator.ModeKeys.PREDICT:
            return estimator.EstimatorSpec(mode, export_outputs=spec.export_outputs)
        return spec

    definition = build_definition()
    broken = estimator.Estimator(
        wrapping(change),
        params=definition.params,
        serving_input_receiver_fn=definition.serving_input_receiver_fn,
        supervised_input_receiver_fn=definition.supervised_input_receiver_fn,
    )
    with pytest.raises(DefinitionError, match="mode 'infer': predictions are missing"):
        write_saved_model(
            broken, checkpoint_of(model_dir), export_dir, modes=("train", "eval", "serve")
        )


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_train_or_eval_without_a_supervised_receiver_fails_before_any_graph(
    model_dir: Path, export_dir: Path, mode: str
) -> None:
    called: list[str] = []

    def model_fn(features: Any, labels: Any, mode: str, params: dict[str, Any]) -> Any:
        called.append(mode)
        return custom_model.model_fn(features, labels, mode, params)

    definition = build_definition()
    serving_only = estimator.Estimator(
        model_fn,
        params=definition.params,
        serving_input_receiver_fn=definition.serving_input_receiver_fn,
    )
    with pytest.raises(DefinitionError, match=f"cannot export mode '{mode}'") as raised:
        write_saved_model(serving_only, checkpoint_of(model_dir), export_dir, modes=("serve", mode))
    assert "supervised_input_receiver_fn" in str(raised.value)
    assert called == []


@pytest.mark.parametrize(
    ("receiver", "modes", "expected"),
    [
        (
            "serving_input_receiver_fn",
            ("serve",),
            "serving_input_receiver_fn returned a dict; it must return a ServingInputReceiver",
        ),
        (
            "supervised_input_receiver_fn",
            ("eval",),
            "supervised_input_receiver_fn returned a dict; it must return a "
            "SupervisedInputReceiver",
        ),
    ],
)
def test_a_receiver_fn_returning_the_wrong_type_is_named(
    model_dir: Path, export_dir: Path, receiver: str, modes: tuple[str, ...], expected: str
) -> None:
    def wrong_receiver_fn() -> Any:
        import tensorflow as tf

        return {"age": tf.compat.v1.placeholder(tf.float32, [None, 1])}

    definition = build_definition(**{receiver: wrong_receiver_fn})
    with pytest.raises(DefinitionError, match=expected):
        write_saved_model(definition, checkpoint_of(model_dir), export_dir, modes=modes)


def test_a_serving_receiver_is_not_taken_for_train(model_dir: Path, export_dir: Path) -> None:
    definition = build_definition()
    mixed = build_definition(supervised_input_receiver_fn=definition.serving_input_receiver_fn)
    with pytest.raises(DefinitionError, match="returned a ServingInputReceiver"):
        write_saved_model(mixed, checkpoint_of(model_dir), export_dir, modes=("train",))


def test_a_truncated_checkpoint_is_a_checkpoint_error_naming_it(
    model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for source in model_dir.glob(f"{CHECKPOINT_NAME}.*"):
        shutil.copyfile(source, broken / source.name)
    data = broken / f"{CHECKPOINT_NAME}.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:100])
    export_dir = tmp_path / "export"
    with pytest.raises(CheckpointError, match=str(broken / CHECKPOINT_NAME)):
        write_saved_model(build_definition(), str(broken / CHECKPOINT_NAME), export_dir)
    assert not export_dir.exists()


def test_a_missing_checkpoint_is_named(model_dir: Path, export_dir: Path) -> None:
    missing = str(model_dir / "model.ckpt-999")
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*model\.ckpt-999"):
        write_saved_model(build_definition(), missing, export_dir)


def test_a_non_empty_export_dir_is_refused_and_kept(model_dir: Path, tmp_path: Path) -> None:
    export_dir = tmp_path / "export"
    export_dir.mkdir()
    (export_dir / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="must not exist or be an empty directory"):
        write_saved_model(build_definition(), checkpoint_of(model_dir), export_dir)
    assert [p.name for p in export_dir.iterdir()] == ["keep.txt"]


def test_variables_only_a_later_mode_creates_are_refused(tmp_path: Path, export_dir: Path) -> None:
    """The SavedModel's one variables/ is saved from the first graph: a serve graph with a
    variable the train graph lacks would load without its value."""
    vocabulary, checkpoint = vocab_model.write_model_dir(
        tmp_path / "vocab", DATA / "vocab" / "colors.txt", extra_variables=("serving_scale",)
    )

    def model_fn(features: Any, labels: Any, mode: str, params: dict[str, Any]) -> Any:
        import tensorflow as tf

        spec = vocab_model.model_fn(features, labels, mode, params)
        if mode != estimator.ModeKeys.PREDICT:
            return spec
        scale = tf.compat.v1.get_variable("serving_scale", [], initializer=tf.ones_initializer())
        score = spec.predictions["score"] * scale
        return estimator.EstimatorSpec(mode, predictions={"score": score})

    definition = vocab_model.definition(vocabulary, model_fn)
    with pytest.raises(DefinitionError, match="lacks variables other modes create") as raised:
        write_saved_model(definition, checkpoint, export_dir, modes=("train", "serve"))
    assert "saved from the 'train' graph" in str(raised.value)
    assert "serve: serving_scale" in str(raised.value)
    # Alone, the serve graph exports: the checkpoint has the variable.
    served = tmp_path / "served"
    assert write_saved_model(definition, checkpoint, served).global_step == vocab_model.STEP
