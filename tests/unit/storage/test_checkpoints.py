"""The one checkpoint resolver, on local disk: state file, kept step, moved model dirs, and
bad input naming the path. The GCS side runs in tests/integration/storage.

Resolution reads only the state file and file names (no TensorFlow): the checkpoint files
here are empty stand-ins named as tf.train.CheckpointManager names them; the savedmodel and
operator integration tests resolve checkpoints written by TF itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_tf_export.storage.checkpoints import (
    CheckpointError,
    ResolvedCheckpoint,
    recorded_checkpoint,
    resolve_checkpoint,
)
from airflow_tf_export.storage.local import LocalStorage

STATE = """model_checkpoint_path: "{d}ckpt-60"
all_model_checkpoint_paths: "{d}ckpt-20"
all_model_checkpoint_paths: "{d}ckpt-40"
all_model_checkpoint_paths: "{d}ckpt-60"
"""


def checkpoint_dir(root: Path, state: str, steps: tuple[int, ...] = (20, 40, 60)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for step in steps:
        (root / f"ckpt-{step}.index").write_bytes(b"")
        (root / f"ckpt-{step}.data-00000-of-00001").write_bytes(b"")
    (root / "checkpoint").write_text(state)
    return root


@pytest.mark.parametrize("recorded_dir", ["", "/old/location/of/model/"], ids=["relative", "moved"])
def test_latest_or_the_kept_checkpoint_of_the_eval_step(tmp_path: Path, recorded_dir: str) -> None:
    model = checkpoint_dir(tmp_path / "model", STATE.format(d=recorded_dir))
    storage = LocalStorage()
    latest = resolve_checkpoint(storage, str(model), None)
    assert latest == ResolvedCheckpoint(str(model / "ckpt-60"), 60)
    assert resolve_checkpoint(storage, str(model), None, step=40).path == str(model / "ckpt-40")
    assert resolve_checkpoint(storage, str(model), "ckpt-20").step == 20
    # A step the state file does not list falls back to the latest (Best then names both).
    assert resolve_checkpoint(storage, str(model), None, step=50).step == 60


def test_an_absolute_recorded_path_is_used_as_written(tmp_path: Path) -> None:
    elsewhere = checkpoint_dir(tmp_path / "elsewhere", "", steps=(7,))
    model = checkpoint_dir(tmp_path / "model", f'model_checkpoint_path: "{elsewhere}/ckpt-7"\n')
    assert recorded_checkpoint(LocalStorage(), str(model)) == str(elsewhere / "ckpt-7")


def test_a_state_file_copied_from_another_backend_finds_its_checkpoint_by_name(
    tmp_path: Path,
) -> None:
    model = checkpoint_dir(tmp_path, 'model_checkpoint_path: "gs://bucket/run/ckpt-40"\n')
    assert resolve_checkpoint(LocalStorage(), str(model), None).path == str(model / "ckpt-40")


def test_an_explicit_checkpoint_path_wins(tmp_path: Path) -> None:
    model = checkpoint_dir(tmp_path, STATE.format(d=""))
    chosen = str(model / "ckpt-20")
    assert resolve_checkpoint(LocalStorage(), str(model), chosen).path == chosen


def test_no_state_file_names_the_model_dir_and_the_state_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=f"no checkpoint in {tmp_path}") as raised:
        resolve_checkpoint(LocalStorage(), str(tmp_path), None)
    assert str(tmp_path / "checkpoint") in str(raised.value)
    assert raised.value.path == str(tmp_path)


def test_a_deleted_latest_checkpoint_is_named_with_where_it_was_looked_for(
    tmp_path: Path,
) -> None:
    model = checkpoint_dir(tmp_path, STATE.format(d="/old/"), steps=(20, 40))
    with pytest.raises(CheckpointError, match="names checkpoint '/old/ckpt-60'") as raised:
        resolve_checkpoint(LocalStorage(), str(model), None)
    assert f"/old/ckpt-60 or {model / 'ckpt-60'}" in str(raised.value)
    assert raised.value.path == "/old/ckpt-60"


def test_a_missing_explicit_checkpoint_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "ckpt-42")
    with pytest.raises(CheckpointError, match="not found") as raised:
        resolve_checkpoint(LocalStorage(), str(tmp_path), missing)
    assert repr(missing) in str(raised.value)
    assert raised.value.path == missing


def test_the_checkpoint_name_must_end_with_its_global_step(tmp_path: Path) -> None:
    model = checkpoint_dir(tmp_path / "model", 'model_checkpoint_path: "final"\n')
    (model / "final.index").write_bytes(b"")
    with pytest.raises(CheckpointError, match="does not end with its global step") as raised:
        resolve_checkpoint(LocalStorage(), str(model), None)
    assert raised.value.path == str(model / "final")
    # Without the step requirement the recorded checkpoint is still found.
    assert recorded_checkpoint(LocalStorage(), str(model)) == str(model / "final")


@pytest.mark.parametrize(
    "state",
    ["this is not a proto\n", 'all_model_checkpoint_paths: "ckpt-20"\n', "\udcff"],
    ids=["not-a-proto", "no-latest", "not-utf8"],
)
def test_an_unreadable_state_file_is_named(tmp_path: Path, state: str) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "checkpoint").write_bytes(state.encode("utf-8", "surrogateescape"))
    with pytest.raises(CheckpointError, match="cannot read the checkpoint state file") as raised:
        resolve_checkpoint(LocalStorage(), str(model), None)
    assert raised.value.path == str(model / "checkpoint")
    assert str(model / "checkpoint") in str(raised.value)


def test_bad_input_is_a_value_error_so_operators_fail_without_retrying(tmp_path: Path) -> None:
    assert issubclass(CheckpointError, ValueError)
    with pytest.raises(ValueError, match="no checkpoint in"):
        resolve_checkpoint(LocalStorage(), str(tmp_path), None)
