"""Shared, expensive setup of the Estimator export tests: the custom model_fn's model_dir
copied out of tests/data once, and its serve-only and multi-mode exports written once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from estimator_support import CHECKPOINT_NAME, CUSTOM, Export, build_definition

from airflow_tf_export.savedmodel import write_saved_model

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the custom model_fn's model_dir without its exports (tests never write
    into tests/data)."""
    copy = tmp_path_factory.mktemp("custom_model_fn") / "model_dir"
    shutil.copytree(CUSTOM / "model_dir", copy, ignore=shutil.ignore_patterns("export"))
    return copy


@pytest.fixture(scope="session")
def checkpoint(model_dir: Path) -> str:
    return str(model_dir / CHECKPOINT_NAME)


@pytest.fixture(scope="session")
def definition() -> Any:
    return build_definition()


@pytest.fixture(scope="session")
def serving_export(
    definition: Any, checkpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Export:
    path = tmp_path_factory.mktemp("serving") / "export"
    return Export(path, write_saved_model(definition, checkpoint, path))


@pytest.fixture(scope="session")
def all_modes_export(
    definition: Any, checkpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Export:
    path = tmp_path_factory.mktemp("all_modes") / "export"
    written = write_saved_model(definition, checkpoint, path, modes=("eval", "infer", "train"))
    return Export(path, written)
