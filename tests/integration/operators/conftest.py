"""A real trained model dir for the operator tests: checkpoints from the example training and
eval event files written by tf.summary; copies on local disk and on the GCS emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from operator_support import EVAL_METRICS, STEPS, ModelDir, copy_model_dir, write_eval_events

from airflow_tf_export.example.train import train


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
    return copy_model_dir(request, trained_model_dir, tmp_path, monkeypatch)
