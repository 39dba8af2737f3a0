"""The export flow's validation step on both backends: a staged version that fails it is
never published and nothing published changes; the validating process is a real second
Python process, restarted when it dies."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from storage_test_models import NOW, Backend, write_model_files

from airflow_tf_export.core.strategies import Candidate, LatestStrategy
from airflow_tf_export.core.validation import ValidationError
from airflow_tf_export.example.model import definition
from airflow_tf_export.savedmodel.validation import (
    ValidationOptions,
    ValidationProcess,
    staged_validator,
)
from airflow_tf_export.storage.export_flow import export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.local import LocalStorage


def test_a_staged_version_that_cannot_be_read_is_not_published(backend: Backend) -> None:
    exporter = ExporterDir(backend.storage, backend.uri("export", "latest"))
    strategy = LatestStrategy(name="latest")
    first = export_with_strategy(
        exporter,
        strategy,
        Candidate("/model/ckpt-100", 100),
        lambda directory: write_model_files(directory, 100),
        now_seconds=NOW,
    )
    assert first.exported
    validate = staged_validator(definition, lambda uri: LocalStorage(), ValidationOptions())
    with pytest.raises(ValidationError, match="the staged SavedModel cannot be read"):
        export_with_strategy(
            exporter,
            strategy,
            Candidate("/model/ckpt-200", 200),
            lambda directory: write_model_files(directory, 200),
            now_seconds=NOW + 100,
            validate=validate,
        )
    state = exporter.scan()
    assert [m.version for m in state.committed] == [NOW]
    assert state.staging == [] and state.invalid == []


def test_a_validating_process_that_dies_fails_the_request_and_is_restarted(
    tmp_path: Path,
) -> None:
    process = ValidationProcess()
    process.start()
    worker = process._process
    assert worker is not None
    request = {"dir": str(tmp_path), "calls": [{"tag": "serve", "key": "x", "feeds": {}}]}
    # Killed while it imports TensorFlow for its first request (seconds), as a crash would.
    killer = threading.Timer(1.0, os.kill, (worker.pid, signal.SIGKILL))
    killer.start()
    with pytest.raises(ValidationError, match=r"the validating process ended \(exit code -9\)"):
        process.ask(request)
    killer.join()
    answer = process.ask(request)
    assert answer["load_error"] and "SavedModel file does not exist" in answer["load_error"]


def test_a_request_interrupted_while_waiting_leaves_no_answer_for_the_next(
    tmp_path: Path,
) -> None:
    """A task's timeout (a signal handler raising) while the validating process answers: the
    next export must get the answer to its own request, never the interrupted one's."""

    class Interrupted(Exception):
        pass

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    process = ValidationProcess()
    calls = [{"tag": "serve", "key": "x", "feeds": {}}]
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.alarm(1)  # the first request imports TensorFlow there: seconds
        with pytest.raises(Interrupted):
            process.ask({"dir": str(tmp_path / "interrupted"), "calls": calls})
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    answer = process.ask({"dir": str(tmp_path / "next"), "calls": calls})
    assert str(tmp_path / "next") in answer["load_error"], answer
