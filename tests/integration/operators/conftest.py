"""A real trained model dir for the operator tests: checkpoints from the example training and
eval event files written by tf.summary; copies on local disk and on the GCS emulator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from operator_support import EVAL_METRICS, GCS_CONNECTION, STEPS, ModelDir, write_eval_events

from airflow_tf_export.example.train import train
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Checkpoints ckpt-20/40/60 of the example model and eval events for each step."""
    model_dir = tmp_path_factory.mktemp("trained") / "model"
    for _ in STEPS:
        train(model_dir=str(model_dir), steps=20, batch_size=32)
    write_eval_events(model_dir, EVAL_METRICS)
    return model_dir


@pytest.fixture(params=["local", "gcs"])
def model_dir(
    request: pytest.FixtureRequest,
    trained_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> ModelDir:
    """The trained model dir copied to local disk or to a fresh emulator bucket; for GCS the
    default Airflow connection points at the emulator with anonymous credentials."""
    if request.param == "local":
        local = tmp_path / "model"
        shutil.copytree(trained_model_dir, local)
        return ModelDir("local", LocalStorage(), str(local))
    client, bucket = request.getfixturevalue("gcs_bucket")
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", GCS_CONNECTION)
    storage = GcsStorage(client)
    uri = f"gs://{bucket}/model"
    storage.upload_dir(trained_model_dir, uri)
    return ModelDir("gcs", storage, uri)
