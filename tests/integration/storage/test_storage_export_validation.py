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


_HANGING_EXPORT = """
import base64
import sys
import tensorflow as tf
from airflow_tf_export.savedmodel.validation import ValidationProcess

class Endless(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64, name="x")])
    def serve(self, x):
        return {"y": tf.while_loop(lambda i: tf.reduce_all(i >= 0), lambda i: i + 1, [x])[0]}

model = Endless()
tf.saved_model.save(model, sys.argv[1], signatures={"serving_default": model.serve})
feed = base64.b64encode(tf.make_tensor_proto([1], dtype=tf.int64).SerializeToString()).decode()
process = ValidationProcess()
process.ask({"dir": sys.argv[1] + "-absent", "calls": []})  # TensorFlow imported there
print(process._process.pid, flush=True)
call = {"tag": "serve", "key": "serving_default", "feeds": {"x": feed}}
process.ask({"dir": sys.argv[1], "calls": [call]})
"""


def test_the_validating_process_ends_when_its_task_is_killed_mid_call(tmp_path: Path) -> None:
    """A signature that never returns, and the task is SIGKILLed (a worker's timeout): the
    validating process, busy in the call, must not run on forever at full CPU."""
    import subprocess
    import sys
    import time

    task = subprocess.Popen(
        [sys.executable, "-c", _HANGING_EXPORT, str(tmp_path / "endless")],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert task.stdout is not None
    worker = int(task.stdout.readline())
    try:
        time.sleep(3)  # loaded and looping
        os.kill(task.pid, signal.SIGKILL)
        task.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _running(worker):
            time.sleep(0.2)
        assert not _running(worker), f"validating process {worker} outlived its task"
    finally:
        if _running(worker):
            os.kill(worker, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Whether `pid` runs (a zombie, already ended, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
