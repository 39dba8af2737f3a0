"""Shared pieces of the operator integration tests: the trained model's eval metrics, the
emulator connection, a stand-in task instance, and loading published versions back with
TensorFlow."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.bases.xcom import BaseXCom
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_tf_export.storage import Storage
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage

STEPS = (20, 40, 60)
# Eval metrics per step, chosen so that Best exports 20, exports 40 (better) and skips 60.
EVAL_METRICS: Mapping[int, Mapping[str, float]] = {
    20: {"loss": 0.60, "accuracy": 0.61},
    40: {"loss": 0.40, "accuracy": 0.72},
    60: {"loss": 0.50, "accuracy": 0.70},
}
GCS_CONNECTION = (
    '{"conn_type": "google_cloud_platform", '
    '"extra": {"is_anonymous": true, "project": "test-project"}}'
)


class StandInTaskInstance:
    """The lineage fields and `xcom_push` of a task instance (a real one needs the Task SDK
    supervisor; test_operators_dag.py runs the operators with real ones)."""

    def __init__(
        self,
        *,
        dag_id: str = "dag",
        run_id: str = "run-1",
        task_id: str = "export",
        try_number: int = 1,
        map_index: int = -1,
    ) -> None:
        self.dag_id = dag_id
        self.run_id = run_id
        self.task_id = task_id
        self.try_number = try_number
        self.map_index = map_index
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def task_context(**ti_fields: Any) -> Any:
    """A context with a stand-in task instance and real outlet event accessors."""
    return {"ti": StandInTaskInstance(**ti_fields), "outlet_events": OutletEventAccessors()}


def run_task(operator: Any, context: Any) -> tuple[str, dict[str, Any]]:
    """`operator.execute(context)` as the task runner ends it: `("success", return value)`,
    or `("skipped", the outcome it pushed to XCom)` when it raised AirflowSkipException."""
    try:
        return "success", operator.execute(context)
    except AirflowSkipException:
        return "skipped", context["ti"].xcoms[BaseXCom.XCOM_RETURN_KEY]


def write_eval_events(model_dir: Path, metrics: Mapping[int, Mapping[str, float]]) -> None:
    """Eval summaries, one event per evaluated step, written by TensorFlow itself."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(model_dir / "eval"))
    with writer.as_default():
        for step, values in metrics.items():
            for name, value in values.items():
                tf.summary.scalar(name, value, step=step)
    writer.close()


@dataclass(frozen=True)
class ModelDir:
    """A fresh copy of the trained model dir in one backend."""

    backend: str
    storage: Storage
    uri: str

    def join(self, *parts: str) -> str:
        return self.storage.join(self.uri, *parts)


def copy_model_dir(
    request: pytest.FixtureRequest,
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> ModelDir:
    """`source` copied to local disk, or (request.param "gcs") to a fresh emulator bucket
    with the default Airflow connection pointing at the emulator anonymously."""
    if request.param == "local":
        local = tmp_path / "model"
        shutil.copytree(source, local)
        return ModelDir("local", LocalStorage(), str(local))
    client, bucket = request.getfixturevalue("gcs_bucket")
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT", GCS_CONNECTION)
    storage = GcsStorage(client)
    uri = f"gs://{bucket}/model"
    storage.upload_dir(source, uri)
    return ModelDir("gcs", storage, uri)


def load_version(storage: Storage, version_uri: str, tags: str = "serve") -> Any:
    """Copy a published version to local disk and load it with TensorFlow."""
    import tensorflow as tf

    local = Path(tempfile.mkdtemp(prefix="loaded-version-"))
    storage.download_dir(version_uri, local)
    return tf.saved_model.load(str(local), tags=[tags])


def classify(loaded: Any, ages: list[int], languages: list[str]) -> Any:
    """Run serving_default (a Classify signature on serialized tf.Examples)."""
    import tensorflow as tf

    examples = [
        tf.train.Example(
            features=tf.train.Features(
                feature={
                    "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[age])),
                    "language": tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[language.encode()])
                    ),
                }
            )
        ).SerializeToString()
        for age, language in zip(ages, languages, strict=True)
    ]
    return loaded.signatures["serving_default"](inputs=tf.constant(examples))
