"""The gs:// path of docker/compose.yaml, run for real without Docker.

The `gcs` service's command line (the image's ENTRYPOINT, then the compose `command`) runs
the gcp-storage-emulator here on a free port with a temporary data dir in place of the
`gcs` volume, and the service's healthcheck probes it. Then the demo DAG runs with
`airflow dags test` on the Airflow services' own settings: their connection, their Fernet
key and the gs:// demo dir docs/docker.md gives, against that emulator.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from compose_files import GCS_DEMO_DIR, REPO, emulator_entrypoint, variant

from airflow_tf_export.storage import storage_for
from airflow_tf_export.storage.exporter_dir import ExporterDir

BIN = Path(sys.executable).parent
COMPOSE_PORT = "9023"


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def _with(arguments: list[str], option: str, value: str) -> list[str]:
    index = arguments.index(option) + 1
    return [*arguments[:index], value, *arguments[index + 1 :]]


def _emulator_command(port: str, data_dir: Path, *, with_compose_command: bool) -> list[str]:
    """The gcs container's command line, on 127.0.0.1:`port` with `data_dir` as /data."""
    program, *arguments = emulator_entrypoint()
    arguments = _with(arguments, "--host", "127.0.0.1")
    arguments = _with(arguments, "--port", port)
    arguments = _with(arguments, "--data-dir", str(data_dir))
    extra = variant("local")["services"]["gcs"]["command"] if with_compose_command else []
    return [str(BIN / program), *arguments, *extra]


def _healthy(port: str) -> bool:
    """Whether the gcs service's healthcheck passes (its probe, pointed at `port`)."""
    kind, program, *arguments = variant("local")["services"]["gcs"]["healthcheck"]["test"]
    assert (kind, program) == ("CMD", "python")
    probe = [sys.executable, *(a.replace(f":{COMPOSE_PORT}/", f":{port}/") for a in arguments)]
    return subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0


@contextlib.contextmanager
def _emulator(port: str, data_dir: Path, *, with_compose_command: bool = True) -> Iterator[None]:
    command = _emulator_command(port, data_dir, with_compose_command=with_compose_command)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"{command} exited with {process.returncode}"
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", int(port))) == 0:
                    break
            assert time.monotonic() < deadline, f"{command} did not listen within 30 s"
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_emulator_creates_the_bucket_at_start_and_keeps_its_objects(tmp_path: Path) -> None:
    from google.cloud import storage

    port = _free_port()
    with _emulator(port, tmp_path, with_compose_command=False):
        assert not _healthy(port)  # the probe asks for the bucket, not just for a server
    with _emulator(port, tmp_path):
        assert _healthy(port)
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
        try:
            bucket = storage.Client().bucket("airflow-tf-export-demo")
            bucket.blob("demo/kept").upload_from_string(b"kept")
        finally:
            del os.environ["STORAGE_EMULATOR_HOST"]
    # A restarted container on the same volume: the bucket and its objects are still there.
    with _emulator(port, tmp_path):
        assert _healthy(port)
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
        try:
            kept = storage.Client().bucket("airflow-tf-export-demo").blob("demo/kept")
            assert kept.download_as_bytes() == b"kept"
        finally:
            del os.environ["STORAGE_EMULATOR_HOST"]


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(BIN / "airflow"), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def test_the_demo_dag_runs_on_gcs_with_the_compose_settings(tmp_path: Path) -> None:
    services = variant("local")["services"]
    compose_env = services["scheduler"]["environment"]
    port = _free_port()
    home = tmp_path / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": compose_env["AIRFLOW__CORE__FERNET_KEY"],
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": compose_env["AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT"],
        "STORAGE_EMULATOR_HOST": compose_env["STORAGE_EMULATOR_HOST"].replace(
            f"gcs:{COMPOSE_PORT}", f"127.0.0.1:{port}"
        ),
        "AIRFLOW_TF_EXPORT_DEMO_DIR": GCS_DEMO_DIR,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    assert env["STORAGE_EMULATOR_HOST"] == f"http://127.0.0.1:{port}"
    with _emulator(port, tmp_path / "gcs"):
        _airflow(env, "db", "migrate")
        _airflow(env, "dags", "test", "example_retraining", "2024-01-01")
        with sqlite3.connect(home / "airflow.db") as db:
            states = dict(
                db.execute(
                    "select task_id, state from task_instance where dag_id = 'example_retraining'"
                ).fetchall()
            )
        assert states == {
            "train": "success",
            "evaluate": "success",
            "wait_for_eval": "success",
            "compare_best": "success",
            "export_best": "success",
            "export_latest": "success",
            "export_final": "skipped",  # step 40 of max_steps 200: not the final export
            "retention": "success",
        }
        model_dir = f"{GCS_DEMO_DIR}/model"
        os.environ["STORAGE_EMULATOR_HOST"] = env["STORAGE_EMULATOR_HOST"]
        try:
            for exporter in ("best", "latest"):
                uri = f"{model_dir}/export/{exporter}"
                exporter_dir = ExporterDir(storage_for(uri), uri)
                (version,) = exporter_dir.committed()
                assert version.global_step == 40
                version_uri = exporter_dir.version_uri(version.version)
                assert version_uri.startswith(f"{model_dir}/export/")
                verified = subprocess.run(
                    [str(BIN / "airflow-tf-export"), "verify", version_uri],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert verified.returncode == 0, verified.stdout + verified.stderr
                assert verified.stdout.startswith("OK"), verified.stdout
        finally:
            del os.environ["STORAGE_EMULATOR_HOST"]
