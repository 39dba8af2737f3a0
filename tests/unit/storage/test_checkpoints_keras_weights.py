"""Keras weights files (`<name>-<step>.weights.h5`) through the one checkpoint resolver, on
local disk: an explicit checkpoint_path resolves when that one file exists, the step comes
from its name, only that file is downloaded, and listing a model dir's checkpoints gives one
kind at a time. The GCS side runs through the operators in
tests/integration/operators/test_operators_keras_weights.py.

The weights files here are empty stand-ins: resolution reads only file names.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_tf_export.storage.checkpoints import (
    CheckpointError,
    ResolvedCheckpoint,
    checkpoint_files,
    list_checkpoints,
    resolve_checkpoint,
)
from airflow_tf_export.storage.local import LocalStorage


def weights_dir(root: Path, *names: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        (root / name).write_bytes(b"")
    return root


@pytest.mark.parametrize("given", ["absolute", "relative"])
def test_an_explicit_weights_file_resolves_with_the_step_of_its_name(
    tmp_path: Path, given: str
) -> None:
    model = weights_dir(tmp_path / "model", "ckpt-7.weights.h5", "ckpt-14.weights.h5")
    path = str(model / "ckpt-7.weights.h5") if given == "absolute" else "ckpt-7.weights.h5"
    assert resolve_checkpoint(LocalStorage(), str(model), path) == ResolvedCheckpoint(
        str(model / "ckpt-7.weights.h5"), 7
    )


def test_a_weights_file_needs_no_index_file_and_no_state_file(tmp_path: Path) -> None:
    model = weights_dir(tmp_path, "ckpt-3.weights.h5")
    resolved = resolve_checkpoint(LocalStorage(), str(model), "ckpt-3.weights.h5")
    assert resolved.step == 3
    assert not (model / "checkpoint").exists()
    assert not (model / "ckpt-3.weights.h5.index").exists()


def test_a_missing_weights_file_names_the_file_itself(tmp_path: Path) -> None:
    missing = str(tmp_path / "ckpt-7.weights.h5")
    with pytest.raises(CheckpointError, match="not found") as raised:
        resolve_checkpoint(LocalStorage(), str(tmp_path), missing)
    assert str(raised.value) == f"checkpoint {missing!r} not found: {missing} does not exist"
    assert ".index" not in str(raised.value)
    assert raised.value.path == missing


@pytest.mark.parametrize("name", ["model.weights.h5", "ckpt-7-final.weights.h5"])
def test_a_weights_file_not_named_for_its_step_is_rejected_with_the_expected_form(
    tmp_path: Path, name: str
) -> None:
    model = weights_dir(tmp_path, name)
    with pytest.raises(CheckpointError, match="is not named for its global step") as raised:
        resolve_checkpoint(LocalStorage(), str(model), name)
    message = str(raised.value)
    assert repr(str(model / name)) in message
    assert "'<name>-<global step>.weights.h5'" in message
    assert "ckpt-1200.weights.h5" in message
    assert raised.value.path == str(model / name)
    assert isinstance(raised.value, ValueError)


def test_without_a_state_file_the_error_says_weights_files_need_checkpoint_path(
    tmp_path: Path,
) -> None:
    model = weights_dir(tmp_path, "ckpt-7.weights.h5")
    with pytest.raises(CheckpointError, match=f"no checkpoint in {model}") as raised:
        resolve_checkpoint(LocalStorage(), str(model), None)
    message = str(raised.value)
    assert "Keras weights files" in message
    assert "explicit checkpoint_path" in message
    assert "Keras writes no checkpoint state file" in message


def test_a_state_file_may_name_a_weights_file(tmp_path: Path) -> None:
    """Keras writes none, but a hand-written one is honoured like any recorded path."""
    model = weights_dir(tmp_path, "ckpt-7.weights.h5")
    (model / "checkpoint").write_text('model_checkpoint_path: "ckpt-7.weights.h5"\n')
    assert resolve_checkpoint(LocalStorage(), str(model), None) == ResolvedCheckpoint(
        str(model / "ckpt-7.weights.h5"), 7
    )


def test_checkpoint_files_of_a_weights_file_is_that_one_file(tmp_path: Path) -> None:
    model = weights_dir(
        tmp_path,
        "ckpt-7.weights.h5",
        "ckpt-70.weights.h5",
        "ckpt-7.index",
        "ckpt-7.data-00000-of-00001",
    )
    storage = LocalStorage()
    assert checkpoint_files(storage, str(model / "ckpt-7.weights.h5")) == (
        str(model),
        ["ckpt-7.weights.h5"],
    )
    parent, names = checkpoint_files(storage, str(model / "ckpt-7"))
    assert (parent, sorted(names)) == (str(model), ["ckpt-7.data-00000-of-00001", "ckpt-7.index"])


def test_list_checkpoints_gives_one_kind_by_step(tmp_path: Path) -> None:
    """A TF model dir may hold weights files with epoch numbers, or pretrained ones: they are
    not its checkpoints (retention must not count or delete them), and the other way round."""
    model = weights_dir(
        tmp_path,
        "ckpt-20.index",
        "ckpt-20.data-00000-of-00001",
        "ckpt-5.data-00000-of-00001",
        "ckpt-9.weights.h5",
        "ckpt-30.weights.h5",
        "model.weights.h5",
        "ckpt-9.weights.h5.tmp",
        "events.out.tfevents.1.host",
    )
    (model / "checkpoint").write_text('model_checkpoint_path: "ckpt-20"\n')
    (model / "ckpt-40.weights.h5").mkdir()
    storage = LocalStorage()
    tf_checkpoints = list_checkpoints(storage, str(model))
    assert [(c.uri, c.step, c.files, c.complete) for c in tf_checkpoints] == [
        (str(model / "ckpt-5"), 5, ("ckpt-5.data-00000-of-00001",), False),
        (str(model / "ckpt-20"), 20, ("ckpt-20.data-00000-of-00001", "ckpt-20.index"), True),
    ]
    assert tf_checkpoints[0].mtime is None
    assert tf_checkpoints[1].mtime == (model / "ckpt-20.index").stat().st_mtime
    weights = list_checkpoints(storage, str(model), keras_weights=True)
    assert [(c.uri, c.step, c.files, c.complete) for c in weights] == [
        (str(model / "ckpt-9.weights.h5"), 9, ("ckpt-9.weights.h5",), True),
        (str(model / "ckpt-30.weights.h5"), 30, ("ckpt-30.weights.h5",), True),
    ]
    assert weights[0].mtime == (model / "ckpt-9.weights.h5").stat().st_mtime
