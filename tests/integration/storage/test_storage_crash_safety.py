"""Crash safety: a publish killed with SIGKILL at a random moment never leaves a committed
version that fails verification, never shows a saved_model.pb without its variables, and a
retry yields exactly one committed version for the checkpoint.

Each trial runs `storage_publish_worker.py latest` (a real process exporting a 20-file
SavedModel-shaped directory with a delay after each file written) and kills it after a
random delay; the retry runs in this process. One exporter directory collects all trials, so
later trials also run over the leftovers of earlier kills.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from gcs_fixtures import RecordingProxy, emulator_client
from storage_test_models import variable_file_names, write_model_files

from airflow_tf_export.core.strategies import Candidate, LatestStrategy
from airflow_tf_export.core.versions import parse_version
from airflow_tf_export.storage import Storage
from airflow_tf_export.storage.export_flow import export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage

WORKER = Path(__file__).with_name("storage_publish_worker.py")


def _run_and_kill(
    uri: str, step: int, file_delay: float, kill_after: float, env: Mapping[str, str]
) -> bool:
    """Start a worker exporting `step`, SIGKILL it `kill_after` seconds after it is ready;
    True when it had finished by then."""
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), "latest", uri, str(step), str(file_delay)],
        stdout=subprocess.PIPE,
        env=dict(env),
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "ready"
    time.sleep(kill_after)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    return worker.stdout.read().startswith("done")


def _check_invariants(storage: Storage, uri: str) -> ExporterDir:
    exporter = ExporterDir(storage, uri)
    state = exporter.scan()
    assert state.invalid == [], "a crash must never leave a version that looks committed but is not"
    for meta in state.committed:
        assert exporter.verify(meta.version).metadata == meta
    children = storage.list_dir(uri) if storage.exists(uri) else []
    for child in children:
        if parse_version(child.name) is not None:
            names = {e.name for e in storage.list_files(storage.join(uri, child.name))}
            if "saved_model.pb" in names:
                missing = set(variable_file_names()) - names
                assert not missing, f"{child.name} has saved_model.pb but lacks {sorted(missing)}"
    return exporter


def _retry(storage: Storage, uri: str, step: int) -> None:
    exporter = ExporterDir(storage, uri)
    outcome = export_with_strategy(
        exporter,
        LatestStrategy(name="latest", exports_to_keep=None),
        Candidate(f"/model/ckpt-{step}", step),
        lambda directory: write_model_files(directory, step),
    )
    assert outcome.metadata is not None and outcome.metadata.global_step == step
    mine = [m for m in exporter.committed() if m.checkpoint_path == f"/model/ckpt-{step}"]
    assert len(mine) == 1, f"checkpoint {step} is committed {len(mine)} times"
    assert exporter.verify(mine[0].version).metadata == mine[0]


def _trials(
    storage: Storage, uri: str, env: Mapping[str, str], trials: int, window: float, seed: int
) -> int:
    rng = random.Random(seed)
    interrupted = 0
    for step in range(1, trials + 1):
        finished = _run_and_kill(uri, step, 0.01, rng.uniform(0.0, window), env)
        interrupted += not finished
        _check_invariants(storage, uri)
        _retry(storage, uri, step)
        _check_invariants(storage, uri)
    assert len(ExporterDir(storage, uri).committed()) == trials
    return interrupted


def test_publishes_killed_at_random_moments_on_local_disk(tmp_path: Path) -> None:
    uri = str(tmp_path / "model" / "export" / "latest")
    interrupted = _trials(LocalStorage(), uri, os.environ, trials=30, window=0.35, seed=30)
    assert interrupted >= 10, f"only {interrupted} of 30 kills landed before the publish ended"


def test_publishes_killed_at_random_moments_on_the_gcs_emulator(gcs_emulator: str) -> None:
    """The worker's requests go through a proxy that delays each by 10 ms, so kills land
    between uploads; checks and retries talk to the emulator directly."""
    client = emulator_client(gcs_emulator)
    with RecordingProxy(gcs_emulator, delay_seconds=0.01) as proxy:
        bucket = client.create_bucket(f"crash-{os.getpid()}-{time.time_ns() % 10**9}").name
        uri = f"gs://{bucket}/model/export/latest"
        env = {**os.environ, "STORAGE_EMULATOR_HOST": proxy.url}
        interrupted = _trials(GcsStorage(client), uri, env, trials=10, window=0.6, seed=10)
    assert interrupted >= 4, f"only {interrupted} of 10 kills landed before the publish ended"
