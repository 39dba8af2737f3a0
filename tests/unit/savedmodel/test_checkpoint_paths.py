"""Choosing the checkpoint to export from local files, without TensorFlow.

The files are what TensorFlow writes for a checkpoint (a prefix with `.index` and data
shards) and for the state file; the integration tests use checkpoints written by TF itself.
State-file cases (moved dirs, deleted or malformed entries) are tested once, on the shared
resolver, in tests/unit/storage/test_checkpoints.py; here is what savedmodel adds to it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_tf_export.core.checkpoints import step_in_name as step_from_name
from airflow_tf_export.savedmodel.checkpoint_paths import checkpoint_exists, resolve_checkpoint
from airflow_tf_export.savedmodel.errors import CheckpointError


def _checkpoint(model_dir: Path, prefix: str) -> str:
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / f"{prefix}.index").write_bytes(b"index")
    (model_dir / f"{prefix}.data-00000-of-00001").write_bytes(b"data")
    return str(model_dir / prefix)


def _state(model_dir: Path, latest: str, *kept: str) -> None:
    lines = [f'model_checkpoint_path: "{latest}"']
    lines += [f'all_model_checkpoint_paths: "{path}"' for path in (*kept, latest)]
    (model_dir / "checkpoint").write_text("\n".join(lines) + "\n")


def test_the_latest_checkpoint_of_the_state_file_is_chosen(tmp_path: Path) -> None:
    _checkpoint(tmp_path, "ckpt-10")
    latest = _checkpoint(tmp_path, "ckpt-20")
    _state(tmp_path, "ckpt-20", "ckpt-10")
    assert resolve_checkpoint(str(tmp_path), None) == latest


def test_a_relative_model_dir_is_resolved_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    latest = _checkpoint(tmp_path / "model", "ckpt-20")
    _state(tmp_path / "model", "ckpt-20")
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("model", None) == latest


def test_an_explicit_checkpoint_path_wins(tmp_path: Path) -> None:
    chosen = _checkpoint(tmp_path, "ckpt-10")
    _checkpoint(tmp_path, "ckpt-20")
    _state(tmp_path, "ckpt-20")
    assert resolve_checkpoint(str(tmp_path), chosen) == chosen


def test_no_state_file_names_the_model_dir(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=f"no checkpoint in {tmp_path}") as raised:
        resolve_checkpoint(str(tmp_path), None)
    assert raised.value.path == str(tmp_path)


def test_a_deleted_latest_checkpoint_is_named(tmp_path: Path) -> None:
    _checkpoint(tmp_path, "ckpt-10")
    _state(tmp_path, "ckpt-20", "ckpt-10")
    with pytest.raises(CheckpointError, match="records checkpoint 'ckpt-20'") as raised:
        resolve_checkpoint(str(tmp_path), None)
    assert str(tmp_path / "ckpt-20.index") in str(raised.value)
    assert "it holds the checkpoints ckpt-10" in str(raised.value)


def test_a_missing_explicit_checkpoint_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "ckpt-99")
    with pytest.raises(CheckpointError, match=f"no checkpoint at {missing}"):
        resolve_checkpoint(str(tmp_path), missing)


def test_keras_weights_files_count_as_checkpoints(tmp_path: Path) -> None:
    weights = tmp_path / "ckpt-5.weights.h5"
    assert not checkpoint_exists(str(weights))
    weights.write_bytes(b"h5")
    assert resolve_checkpoint(str(tmp_path), str(weights)) == str(weights)


@pytest.mark.parametrize(
    ("path", "step"),
    [
        ("/m/ckpt-1200", 1200),
        ("gs://b/m/model.ckpt-7", 7),
        ("/m/ckpt-42.weights.h5", 42),
        ("/m/final.weights.h5", None),
        ("/m/ckpt", None),
    ],
)
def test_steps_come_from_names(path: str, step: int | None) -> None:
    assert step_from_name(path) == step
