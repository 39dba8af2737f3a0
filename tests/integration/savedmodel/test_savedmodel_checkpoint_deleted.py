"""A checkpoint read in place on local disk that the trainer deletes while it is exported
(its checkpoint retention) fails the export with a retryable error naming it, not as bad
input: real training, a real restore, the files really deleted mid-export."""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

import pytest

from airflow_tf_export.core.strategies import LatestStrategy
from airflow_tf_export.example import model as example
from airflow_tf_export.example.train import train
from airflow_tf_export.savedmodel.export_run import export_checkpoint, saved_model_writer
from airflow_tf_export.storage.base import StorageNotFoundError
from airflow_tf_export.storage.local import LocalStorage


def test_a_checkpoint_deleted_mid_export_is_retryable_and_publishes_nothing(
    tmp_path: Path,
) -> None:
    model_dir = str(tmp_path / "model")
    checkpoint = train(model_dir=model_dir, steps=2)["checkpoint_path"]

    def build_model_while_the_trainer_deletes() -> object:
        for name in glob.glob(f"{checkpoint}.*"):
            os.unlink(name)
        return example.definition.build_model()

    definition = dataclasses.replace(
        example.definition, build_model=build_model_while_the_trainer_deletes
    )
    with pytest.raises(StorageNotFoundError, match="was deleted while it was being exported") as e:
        export_checkpoint(
            storage_for=lambda uri: LocalStorage(),
            model_dir=model_dir,
            name="latest",
            strategy=LatestStrategy(name="latest"),
            checkpoint_path=checkpoint,
            write=lambda storage: saved_model_writer(definition, storage, modes=["serve"]),
        )
    assert not isinstance(e.value, ValueError), "bad input fails without retry"
    assert checkpoint in str(e.value)
    exporter = tmp_path / "model" / "export" / "latest"
    assert [p.name for p in exporter.iterdir() if not p.name.startswith(".")] == []
