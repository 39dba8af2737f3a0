"""Retention racing exports on one exporter dir, in separate processes, on local disk and on
the GCS emulator: no reader ever sees a committed version with missing files or a
`saved_model.pb` without its variables, every export that reported `exported=True` stays
committed, nothing retention did not create is deleted, and no grace period it accepts (0
included) makes it delete a publish in flight.

Each backend runs three long-lived workers (`storage_race_worker.py`): two exporters (Latest,
each with its own retention at the trial's grace period, one step each per trial) and the
RetentionOperator, looping (keep the newest 2) from before the exports start until after they
end. A reader thread in this process lists every version dir meanwhile. After each trial
every version dir must be committed and pass `verify()` with its checksum. The GCS workers go
through a proxy that enforces `ifGenerationMatch` as real GCS does (the exporter lock needs
it). `AIRFLOW_TF_EXPORT_RACE_TRIALS` raises the number of trials for a longer soak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from gcs_fixtures import GenerationEnforcingProxy, emulator_client
from storage_race_worker import SHARDS
from storage_test_models import template, variable_file_names, write_model_files

from airflow_tf_export.core.metadata import METADATA_FILENAME, ExportMetadata, MetadataError
from airflow_tf_export.core.retention import DEFAULT_STAGING_GRACE_SECONDS
from airflow_tf_export.core.versions import parse_version
from airflow_tf_export.storage import Storage, StorageNotFoundError
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage

WORKER = Path(__file__).with_name("storage_race_worker.py")
TRIALS = int(os.environ.get("AIRFLOW_TF_EXPORT_RACE_TRIALS", "20"))
# The smallest grace period accepted, one shorter than any export, and the default.
GRACES = (0.0, 0.05, DEFAULT_STAGING_GRACE_SECONDS)
GCS_CONNECTION = json.dumps(
    {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": "p"}}
)
USER_FILES = {
    "temp-notes.txt": b"my notes",
    "temp-dataset/part-0.csv": b"a,b\n1,2\n",
    "42/notes.txt": b"a copy of a record, for reference",
}


class Worker:
    """One `storage_race_worker.py` process: commands in, one JSON line out per command."""

    def __init__(self, uri: str, env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), uri],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=dict(env),
            text=True,
        )

    def wait_ready(self) -> None:
        assert self.receive_line() == "ready"

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def receive_line(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"worker exited with {self.process.wait()}"
        return line.strip()

    def receive(self) -> dict[str, Any]:
        """The next answer, skipping the log lines Airflow prints."""
        while not (line := self.receive_line()).startswith("result "):
            pass
        return dict(json.loads(line.removeprefix("result ")))

    def close(self) -> int:
        """End the worker (kill it if it does not end within 30 s); its exit code."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


class Reader(threading.Thread):
    """Lists every version dir again and again, as TF Serving or another reader would, and
    records what no reader may ever see."""

    def __init__(self, storage: Storage, uri: str, *, torn_by_rename: bool, pause: float) -> None:
        super().__init__(daemon=True)
        self.storage, self.uri, self.pause = storage, uri, pause
        # A local listing of a dir renamed away meanwhile is torn, not a view of the dir.
        self.torn_by_rename = torn_by_rename
        self.looks = 0
        self.seen: list[str] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.pause):
            self.look()

    def look(self) -> None:
        try:
            children = self.storage.list_dir(self.uri)
        except StorageNotFoundError:
            return
        for child in children:
            if parse_version(child.name) is None or child.name == "42":
                continue
            version_uri = self.storage.join(self.uri, child.name)
            try:
                names = {e.name for e in self.storage.list_files(version_uri)}
            except StorageNotFoundError:
                continue
            problem = self._problem(version_uri, names)
            if problem and (not self.torn_by_rename or self.storage.exists(version_uri)):
                self.seen.append(problem)
            self.looks += 1

    def _problem(self, version_uri: str, names: set[str]) -> str | None:
        if "saved_model.pb" in names and not set(variable_file_names(SHARDS)) <= names:
            return f"{version_uri}: saved_model.pb without all its variables: {sorted(names)}"
        if METADATA_FILENAME not in names:
            return None
        try:
            record = self.storage.read_bytes(self.storage.join(version_uri, METADATA_FILENAME))
            meta = ExportMetadata.from_json(record)
        except (StorageNotFoundError, MetadataError):
            return None  # deleted since the listing
        missing = {e.path for e in meta.manifest} - names
        return f"{version_uri}: committed but missing {sorted(missing)}" if missing else None


def _plant_user_entries(storage: Storage, uri: str, record: bytes) -> None:
    for name, data in USER_FILES.items():
        storage.write_bytes(storage.join(uri, name), data)
    storage.write_bytes(storage.join(uri, "42", METADATA_FILENAME), record)


def _check_after_trial(exporter: ExporterDir, exported: list[int], verified: set[int]) -> None:
    """Every version dir is committed and (once) verified, with its checksum; `verified`
    collects the versions verified so far."""
    storage, uri = exporter.storage, exporter.uri
    state = exporter.scan()
    committed = {m.version for m in state.committed}
    integer_dirs = {v for e in storage.list_dir(uri) if (v := parse_version(e.name))}
    assert integer_dirs - {42} == committed, "a version dir that is neither committed nor gone"
    for version in committed - verified:
        assert exporter.verify(version).metadata_checksum is not None
        verified.add(version)
    assert set(exported) <= committed, "an export reported exported=True for a lost version"
    assert [v for v, _ in state.invalid] == [42] and state.foreign == []
    assert sorted(s.name for s in state.staging) == ["temp-dataset", "temp-notes.txt"]
    for name, data in USER_FILES.items():
        assert storage.read_bytes(storage.join(uri, name)) == data


def _race(
    exporter: ExporterDir, env: Mapping[str, str], tmp_path: Path, *, pause: float, local: bool
) -> dict[str, int]:
    """Run the trials (retention pausing up to `pause` seconds between runs, the reader a
    fifth of that); return totals of what retention did."""
    source = tmp_path / "source"
    source.mkdir()
    write_model_files(source, 0, shards=SHARDS)
    seed = exporter.storage.publish_version(source, exporter.uri, template(0))
    _plant_user_entries(exporter.storage, exporter.uri, seed.to_json().encode())
    workers = [Worker(exporter.uri, env) for _ in range(3)]
    for worker in workers:
        worker.wait_ready()
    retention, exporters = workers[0], workers[1:]
    warm_up = tmp_path / "stop-warm-up"
    warm_up.touch()
    retention.send(f"retain {DEFAULT_STAGING_GRACE_SECONDS} {warm_up} 0")  # imports Airflow
    retention.receive()
    reader = Reader(exporter.storage, exporter.uri, torn_by_rename=local, pause=pause / 5)
    reader.start()
    totals = {"runs": 0, "deleted": 0, "in_use": 0, "exported": 0}
    verified: set[int] = set()
    try:
        for trial in range(TRIALS):
            grace = GRACES[trial % len(GRACES)]
            stop = tmp_path / f"stop-{trial}"
            retention.send(f"retain {grace} {stop} {pause}")
            for offset, worker in enumerate(exporters, 1):
                worker.send(f"export {2 * trial + offset} {grace} 0.01")
            results = [worker.receive() for worker in exporters]
            stop.touch()
            retained = retention.receive()
            exported = [r["version"] for r in results if r["exported"]]
            assert exported, f"trial {trial}: neither export published: {results}"
            _check_after_trial(exporter, exported, verified)
            totals["runs"] += retained["runs"]
            totals["deleted"] += len(retained["deleted"])
            totals["in_use"] += retained["in_use"]
            totals["exported"] += len(exported)
    finally:
        reader.stopped.set()
        reader.join(timeout=60)
        codes = [worker.close() for worker in workers]
    assert codes == [0, 0, 0]
    assert reader.seen == [], reader.seen[:3]
    assert reader.looks > TRIALS
    assert totals["deleted"] >= TRIALS, f"retention deleted too little to race: {totals}"
    return totals


def test_retention_racing_exports_on_local_disk(tmp_path: Path) -> None:
    uri = str(tmp_path / "model" / "export" / "latest")
    exporter = ExporterDir(LocalStorage(), uri)
    totals = _race(exporter, os.environ, tmp_path, pause=0.05, local=True)
    # Local staging dirs are written outside the exporter lock: retention must have met
    # running exports' staging dirs, and kept them.
    assert totals["in_use"] > 0, totals


@pytest.fixture
def enforcing_proxy(gcs_emulator: str) -> Iterator[GenerationEnforcingProxy]:
    with GenerationEnforcingProxy(gcs_emulator) as proxy:
        yield proxy


def test_retention_racing_exports_on_the_gcs_emulator(
    enforcing_proxy: GenerationEnforcingProxy, tmp_path: Path
) -> None:
    client = emulator_client(enforcing_proxy.url)
    bucket = client.create_bucket(f"race-{uuid.uuid4().hex[:12]}").name
    exporter = ExporterDir(GcsStorage(client), f"gs://{bucket}/model/export/latest")
    env = {
        **os.environ,
        "STORAGE_EMULATOR_HOST": enforcing_proxy.url,
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": GCS_CONNECTION,
    }
    _race(exporter, env, tmp_path, pause=0.3, local=False)
