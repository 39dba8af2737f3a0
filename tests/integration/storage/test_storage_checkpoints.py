"""The checkpoint resolver on local disk and on the GCS emulator (real HTTP): the state file
is read through Storage, and a model dir copied from the other backend still resolves.

The checkpoint files are empty stand-ins named as tf.train.CheckpointManager names them:
resolution reads only the state file and file names.
"""

from __future__ import annotations

import pytest
from storage_test_models import Backend

from airflow_tf_export.storage.checkpoints import (
    CheckpointError,
    ResolvedCheckpoint,
    resolve_checkpoint,
)

# Where the state file's paths point after a copy: the other backend's old location.
OLD_LOCATION = {"local": "gs://old-bucket/run", "gcs": "/old/run"}


def _model_dir(backend: Backend, recorded_dir: str) -> str:
    for step in (10, 20):
        backend.storage.write_bytes(backend.uri("model", f"ckpt-{step}.index"), b"")
        backend.storage.write_bytes(backend.uri("model", f"ckpt-{step}.data-00000-of-00001"), b"")
    state = (
        f'model_checkpoint_path: "{recorded_dir}ckpt-20"\n'
        f'all_model_checkpoint_paths: "{recorded_dir}ckpt-10"\n'
        f'all_model_checkpoint_paths: "{recorded_dir}ckpt-20"\n'
    )
    backend.storage.write_bytes(backend.uri("model", "checkpoint"), state.encode())
    return backend.uri("model")


@pytest.mark.parametrize("where", ["relative", "copied"])
def test_latest_and_kept_checkpoints_resolve(backend: Backend, where: str) -> None:
    recorded_dir = "" if where == "relative" else OLD_LOCATION[backend.name] + "/"
    model = _model_dir(backend, recorded_dir)
    storage = backend.storage
    latest = resolve_checkpoint(storage, model, None)
    assert latest == ResolvedCheckpoint(backend.uri("model", "ckpt-20"), 20)
    assert resolve_checkpoint(storage, model, None, step=10).path == backend.uri("model", "ckpt-10")
    assert resolve_checkpoint(storage, model, "ckpt-10").step == 10


def test_missing_checkpoints_are_named_with_their_uri(backend: Backend) -> None:
    model = backend.uri("empty")
    with pytest.raises(CheckpointError, match=f"no checkpoint in {model}"):
        resolve_checkpoint(backend.storage, model, None)
    missing = backend.uri("empty", "ckpt-5")
    with pytest.raises(CheckpointError, match="not found") as raised:
        resolve_checkpoint(backend.storage, model, missing)
    assert repr(missing) in str(raised.value)
