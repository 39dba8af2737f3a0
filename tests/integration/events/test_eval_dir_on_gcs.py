"""Polling a gs:// eval dir: requests counted at a recording proxy in front of the
gcp-storage-emulator (real HTTP). A poll that finds nothing new costs the one listing,
whatever the number of event files; new bytes cost one ranged read of the file that grew."""

from __future__ import annotations

import json
import struct
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from tensorboard.compat.proto import event_pb2, summary_pb2

from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.event_file import TAIL_SIZE
from airflow_tf_export.events.tfrecord import masked_crc32c
from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor
from airflow_tf_export.storage.gcs import GcsStorage

FILES = 40
CONN_ID = "recorded_gcs"


def _record(step: int) -> bytes:
    values = [
        summary_pb2.Summary.Value(tag="loss", simple_value=1 / step),
        summary_pb2.Summary.Value(tag="auc", simple_value=step / 1e4),
    ]
    event = event_pb2.Event(
        step=step, wall_time=float(step), summary=summary_pb2.Summary(value=values)
    ).SerializeToString()
    length = struct.pack("<Q", len(event))
    return (
        length
        + struct.pack("<I", masked_crc32c(length))
        + event
        + struct.pack("<I", masked_crc32c(event))
    )


def _file(first_step: int, evaluations: int) -> bytes:
    return b"".join(_record(step) for step in range(first_step, first_step + evaluations))


@pytest.fixture
def eval_dir(gcs_proxy: Any) -> Iterator[tuple[Any, Any, str]]:
    """A bucket with FILES event files of 20 evaluations each, and a client through the proxy."""
    from gcs_fixtures import emulator_client

    client = emulator_client(gcs_proxy.url)
    bucket = client.create_bucket(f"test-{uuid.uuid4().hex[:12]}")
    for number in range(FILES):
        name = f"m/eval/events.out.tfevents.{1700000000 + number}.host"
        bucket.blob(name).upload_from_string(_file(number * 20 + 1, 20))
    yield client, bucket, f"gs://{bucket.name}/m"


def test_an_idle_poll_is_one_request_whatever_the_number_of_files(
    eval_dir: tuple[Any, Any, str], gcs_proxy: Any
) -> None:
    client, bucket, model_dir = eval_dir
    reader = EvalDirReader(GcsStorage(client), model_dir)
    reader.refresh()
    assert len(reader.steps()) == FILES * 20
    for _ in range(3):
        gcs_proxy.reset()
        reader.refresh()
        assert [(r.method, r.query.get("delimiter")) for r in gcs_proxy.requests] == [
            ("GET", ["/"])  # the listing, which gives every file's size and update time
        ]

    # One file grows (TensorFlow uploads it whole again): the listing, then one ranged read
    # of its new bytes (and the few before them that show it is the file read before).
    name = f"m/eval/events.out.tfevents.{1700000000 + FILES - 1}.host"
    blob = bucket.blob(name)
    old = blob.download_as_bytes()
    new = old + _file(FILES * 20 + 1, 1)
    blob.upload_from_string(new)
    gcs_proxy.reset()
    reader.refresh()
    assert len(gcs_proxy.requests) == 2
    read = gcs_proxy.requests[1]
    assert read.path.endswith(name.replace("/", "%2F"))
    assert read.range == f"bytes={len(old) - TAIL_SIZE}-{len(new) - 1}"
    assert reader.steps()[-1] == FILES * 20 + 1


def test_a_poke_mode_sensor_polls_with_one_request(
    eval_dir: tuple[Any, Any, str], gcs_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, model_dir = eval_dir
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_proxy.url)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True}}),
    )
    sensor = EvalMetricsSensor(
        task_id="wait", model_dir=model_dir, min_step=10_000, gcp_conn_id=CONN_ID
    )
    assert not sensor.poke({})  # type: ignore[arg-type]
    gcs_proxy.reset()
    assert not sensor.poke({})  # type: ignore[arg-type]
    assert gcs_proxy.count() == 1


def test_a_sensor_finding_no_event_file_looks_nearby_once(
    gcs_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first poke that finds no file lists model_dir and its direct subdirectories (one
    request each, with a delimiter); later pokes cost the one listing of the pattern."""
    from gcs_fixtures import emulator_client

    client = emulator_client(gcs_proxy.url)
    bucket = client.create_bucket(f"test-{uuid.uuid4().hex[:12]}")
    for name in (
        "m/validation/events.out.tfevents.1700000000.host.v2",
        "m/train/events.out.tfevents.1700000000.host.v2",
        "m/train/more/events.out.tfevents.1700000001.host.v2",  # deeper: not looked at
        "m/events.out.tfevents.1700000002.host",
        "m/checkpoint",
    ):
        bucket.blob(name).upload_from_string(_file(1, 2))
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_proxy.url)
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN_ID.upper()}",
        json.dumps({"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True}}),
    )
    model_dir = f"gs://{bucket.name}/m"
    sensor = EvalMetricsSensor(task_id="wait", model_dir=model_dir, min_step=1, gcp_conn_id=CONN_ID)
    gcs_proxy.reset()
    with structlog.testing.capture_logs() as logs:
        assert not sensor.poke({})  # type: ignore[arg-type]
    # Listing the pattern's directory, then the nearby look (besides, at most, a look at
    # the bucket when the client is made).
    listings = [r for r in gcs_proxy.requests if r.path.endswith("/o")]
    assert [r.query.get("prefix") for r in listings] == [
        ["m/eval/"],
        ["m/"],
        ["m/train/"],
        ["m/validation/"],
    ]
    assert all(r.query.get("delimiter") == ["/"] for r in listings)
    assert len(gcs_proxy.requests) <= len(listings) + 1
    (line,) = [log["event"] for log in logs if "event files" in log["event"]]
    assert line.endswith(
        f"Event files elsewhere in {model_dir}: the model_dir itself (1 file), train/ (1 file), "
        "validation/ (1 file); set event_file_pattern to the one the evaluation writes: "
        "'*.tfevents.*' or 'train/*.tfevents.*' or 'validation/*.tfevents.*'"
    )
    gcs_proxy.reset()
    assert not sensor.poke({})  # type: ignore[arg-type]
    assert [r.query.get("prefix") for r in gcs_proxy.requests] == [["m/eval/"]]
