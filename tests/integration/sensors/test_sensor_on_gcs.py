"""EvalMetricsSensor and its trigger on gs:// model dirs: the GCS emulator over HTTP, the
client built from an Airflow connection, event files written by TensorFlow."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_tf_export.events.tfrecord import scan_records
from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor
from airflow_tf_export.triggers.eval_metrics import EvalMetricsTrigger

WRITER = Path(__file__).parent.parent / "events" / "tf_event_writer.py"
CONN_ID = "emulated_gcs"


@pytest.fixture(scope="module")
def event_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Estimator eval file with steps 100 and 200, written by TensorFlow."""
    eval_dir = tmp_path_factory.mktemp("gcs_events") / "eval"
    planned = [
        [100, {"loss": 0.5, "auc": 0.75}, "gs://b/m/model.ckpt-100"],
        [200, {"loss": 0.25, "auc": 0.875}, "gs://b/m/model.ckpt-200"],
    ]
    subprocess.run(
        [sys.executable, str(WRITER), str(eval_dir), "0", json.dumps(planned)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (path,) = eval_dir.glob("*.tfevents.*")
    return path


@pytest.fixture
def gcs_model(
    gcs_bucket: tuple[Any, str], event_file: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, str]:
    """A bucket holding the eval file cut after its first evaluation, and a connection."""
    client, bucket_name = gcs_bucket
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True}}),
    )
    data = event_file.read_bytes()
    # Records: file version, step 100 metrics, its checkpoint path, step 200 ... : cut before 200.
    step_200_starts = scan_records(data).records[3][0]
    half = data[:step_200_starts]
    client.bucket(bucket_name).blob(f"m/eval/{event_file.name}").upload_from_string(half)
    return client, bucket_name


def _sensor(bucket_name: str, **kwargs: Any) -> EvalMetricsSensor:
    return EvalMetricsSensor(
        task_id="wait_gcs",
        model_dir=f"gs://{bucket_name}/m",
        gcp_conn_id=CONN_ID,
        poke_interval=0,
        timeout=5,
        **kwargs,
    )


def test_poke_reads_the_gcs_eval_dir(gcs_model: tuple[Any, str]) -> None:
    _, bucket_name = gcs_model
    poked = _sensor(bucket_name, checkpoint_path="gs://b/m/model.ckpt-100").poke({})  # type: ignore[arg-type]
    assert poked.is_done
    assert poked.xcom_value["metrics"] == {"auc": 0.75, "loss": 0.5}
    assert poked.xcom_value["source"].startswith(f"gs://{bucket_name}/m/eval/")
    assert not _sensor(bucket_name, min_step=200).poke({})  # type: ignore[arg-type]


def test_a_missing_bucket_fails_without_retry(gcs_model: tuple[Any, str]) -> None:
    with pytest.raises(AirflowFailException, match="no-such-bucket-x"):
        _sensor("no-such-bucket-x", min_step=1).execute({})  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_the_trigger_waits_for_the_object_to_grow(
    gcs_model: tuple[Any, str], event_file: Path
) -> None:
    client, bucket_name = gcs_model
    trigger = EvalMetricsTrigger(
        model_dir=f"gs://{bucket_name}/m", min_step=200, gcp_conn_id=CONN_ID, poke_interval=0.2
    )
    waiting = asyncio.create_task(anext(trigger.run()))  # type: ignore[arg-type]
    await asyncio.sleep(1.0)
    assert not waiting.done()
    blob = client.bucket(bucket_name).blob(f"m/eval/{event_file.name}")
    await asyncio.to_thread(blob.upload_from_string, event_file.read_bytes())
    event = await asyncio.wait_for(waiting, 30)
    assert event.payload["status"] == "success"
    assert event.payload["result"]["step"] == 200
    assert event.payload["result"]["checkpoint_path"] == "gs://b/m/model.ckpt-200"


@pytest.mark.asyncio
async def test_the_trigger_reports_a_missing_bucket_as_configuration(
    gcs_model: tuple[Any, str],
) -> None:
    trigger = EvalMetricsTrigger(
        model_dir="gs://no-such-bucket-x/m", min_step=1, gcp_conn_id=CONN_ID, poke_interval=0
    )
    event = await asyncio.wait_for(anext(trigger.run()), 30)  # type: ignore[arg-type]
    assert (event.payload["status"], event.payload["kind"]) == ("error", "configuration")
    assert "no-such-bucket-x" in event.payload["message"]


def test_newer_than_an_exporter_on_gcs_with_a_local_model_dir(
    gcs_model: tuple[Any, str], event_file: Path, tmp_path: Path
) -> None:
    """The export operators open export_dir_base with its own backend; so does the sensor."""
    from airflow_tf_export.core.strategies import Candidate, LatestStrategy
    from airflow_tf_export.storage.base import WrittenModel
    from airflow_tf_export.storage.export_flow import export_with_strategy
    from airflow_tf_export.storage.exporter_dir import ExporterDir
    from airflow_tf_export.storage.gcs import GcsStorage

    def write(staging: Path) -> WrittenModel:
        (staging / "saved_model.pb").write_bytes(b"pb")
        return WrittenModel()

    client, bucket_name = gcs_model
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / event_file.name).write_bytes(event_file.read_bytes())
    exports = f"gs://{bucket_name}/exports/latest"
    export_with_strategy(
        ExporterDir(GcsStorage(client), exports),
        LatestStrategy(name="latest"),
        Candidate("/m/model.ckpt-200", 200),
        write,
    )
    sensor = EvalMetricsSensor(
        task_id="wait_newer",
        model_dir=str(tmp_path),
        newer_than_exporter="latest",
        export_dir_base=exports,
        gcp_conn_id=CONN_ID,
        poke_interval=0,
        timeout=5,
    )
    assert not sensor.poke({}).is_done  # type: ignore[arg-type]  # step 200 is exported
