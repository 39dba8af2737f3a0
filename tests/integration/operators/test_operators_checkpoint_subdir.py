"""A model dir whose checkpoints tf.train.CheckpointManager(checkpoint_name="ckpts/ckpt")
keeps in a sub-directory: its state file records `ckpts/ckpt-<step>` relative to the model
dir. On local disk and the GCS emulator, the export operators export `ckpts/ckpt-<step>`, and
checkpoint retention thins out that series where it is, prunes the state file only of what
it deleted, and TensorFlow resumes from the result.

The checkpoints are the example model's (trained by TensorFlow), in `ckpts/`; the state file
is written by TensorFlow's own CheckpointManager code path (relative paths).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors
from operator_support import STEPS, ModelDir, classify, copy_model_dir, load_version

from airflow_tf_export.operators.export import LatestExportOperator
from airflow_tf_export.operators.retention import RetentionOperator

DEFINITION = "airflow_tf_export.example.model:definition"


def context() -> Any:
    ti = SimpleNamespace(dag_id="dag", run_id="run-1", task_id="task", try_number=1, map_index=-1)
    return {"ti": ti, "outlet_events": OutletEventAccessors()}


def sub_directory_layout(trained: Path, target: Path) -> None:
    """The trained checkpoints moved to `target/ckpts/`, the state file written as
    CheckpointManager(checkpoint_name="ckpts/ckpt") writes it, the eval events kept, and a
    top-level `ckpt-20` of the same name (another series: not the state file's)."""
    from tensorflow.python.checkpoint import checkpoint_management

    (target / "ckpts").mkdir(parents=True)
    for path in trained.glob("ckpt-*"):
        shutil.copy(path, target / "ckpts" / path.name)
    for path in trained.glob("ckpt-20.*"):
        shutil.copy(path, target / path.name)
    shutil.copytree(trained / "eval", target / "eval")
    prefixes = [str(target / "ckpts" / f"ckpt-{step}") for step in STEPS]
    checkpoint_management.update_checkpoint_state_internal(
        save_dir=str(target),
        model_checkpoint_path=prefixes[-1],
        all_model_checkpoint_paths=prefixes,
        all_model_checkpoint_timestamps=[1.7e9 + step for step in STEPS],
        last_preserved_timestamp=1.7e9,
        save_relative_paths=True,
    )


def manager_checkpoints(local: Path) -> list[str]:
    """What a new CheckpointManager of that layout recovers from the state file."""
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64))
    manager = tf.train.CheckpointManager(
        checkpoint, str(local), max_to_keep=None, checkpoint_name="ckpts/ckpt"
    )
    return [Path(p).relative_to(local).as_posix() for p in manager.checkpoints]


@pytest.fixture(params=["local", "gcs"])
def model_dir(
    request: pytest.FixtureRequest,
    trained_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> ModelDir:
    source = tmp_path / "source"
    sub_directory_layout(trained_model_dir, source)
    assert (source / "checkpoint").read_text().startswith('model_checkpoint_path: "ckpts/ckpt-60"')
    assert manager_checkpoints(source) == [f"ckpts/ckpt-{step}" for step in STEPS]
    return copy_model_dir(request, source, tmp_path, monkeypatch)


def download(model_dir: ModelDir) -> Path:
    local = Path(tempfile.mkdtemp(prefix="model-"))
    model_dir.storage.download_dir(model_dir.uri, local)
    return local


def test_the_latest_export_exports_the_sub_directory_checkpoint(model_dir: ModelDir) -> None:
    result = LatestExportOperator(
        task_id="task", name="latest", model_definition=DEFINITION, model_dir=model_dir.uri
    ).execute(context())
    assert result["exported"] is True
    assert (result["checkpoint_path"], result["global_step"]) == (
        model_dir.join("ckpts", "ckpt-60"),
        60,
    )
    loaded = load_version(
        model_dir.storage, model_dir.join("export", "latest", str(result["version"]))
    )
    assert classify(loaded, [25], ["german"])["scores"].numpy().shape == (1, 2)


def test_retention_thins_out_the_sub_directory_series_and_training_resumes(
    model_dir: ModelDir,
) -> None:
    import tensorflow as tf

    done = RetentionOperator(
        task_id="task", model_dir=model_dir.uri, checkpoints_to_keep=1
    ).execute(context())["checkpoints"]
    assert done["series"] == ["ckpts/ckpt"]
    assert [(d["prefix"], d["step"]) for d in done["delete"]] == [
        (model_dir.join("ckpts", "ckpt-20"), 20),
        (model_dir.join("ckpts", "ckpt-40"), 40),
    ]
    assert done["state_file"]["remove"] == ["ckpts/ckpt-20", "ckpts/ckpt-40"]
    assert done["state_file"]["outcome"] == "rewritten"
    others = {o["name"]: o["reason"] for o in done["other"]}
    assert others["ckpt-20.index"] == "kept: not a checkpoint of this model dir's series ckpts/ckpt"

    local = download(model_dir)
    assert sorted(p.name for p in (local / "ckpts").iterdir()) == [
        "ckpt-60.data-00000-of-00001",
        "ckpt-60.index",
    ]
    assert sorted(p.name for p in local.glob("ckpt-20.*")) == [
        "ckpt-20.data-00000-of-00001",
        "ckpt-20.index",
    ]
    state = tf.train.get_checkpoint_state(str(local))
    assert state.model_checkpoint_path == str(local / "ckpts" / "ckpt-60")
    assert list(state.all_model_checkpoint_paths) == [str(local / "ckpts" / "ckpt-60")]
    assert list(state.all_model_checkpoint_timestamps) == [1.7e9 + 60]
    assert state.last_preserved_timestamp == 1.7e9
    assert manager_checkpoints(local) == ["ckpts/ckpt-60"]
