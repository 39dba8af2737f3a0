"""The templates on the CeleryExecutor: two workers as two hosts, the model dir on GCS.

One deployment serves the module: PostgreSQL (a fresh database), Redis as the broker (a
queue of its own), the scheduler, dag-processor, triggerer and api-server, and two Celery
workers started as separate processes, each with its own working dir, TMPDIR, log folder
and hostname. The workers reach the GCS emulator through a GenerationEnforcingProxy in this
process: it answers `ifGenerationMatch` preconditions as real GCS does (the emulator ignores
them), so the exporter lock between the two workers is the real one, and the kill test uses
it to stop one export in the middle of its publish.

Historical checkpoints are trained here, then uploaded one data interval at a time: GCS
dates an object by its upload, so the intervals are a few seconds long and in the recent
past. The test process plays the continuous evaluator (the backfill DAGs have
`evaluate=None`); a sequential reference run (the `airflow-tf-export export` command, one
checkpoint after the other by step) works on a local copy of the same checkpoints,
evaluated here by the same code.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import (
    AirflowStack,
    CeleryBroker,
    celery_unavailable_reason,
    fresh_database,
    postgres_unreachable_reason,
    wait_until,
)
from gcs_fixtures import GenerationEnforcingProxy, emulator_client

from airflow_tf_export.core.exporter_index import INDEX_NAME
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.storage import storage_for
from airflow_tf_export.storage.exporter_dir import ExporterDir

DEFINITION = "airflow_tf_export.example.model:definition"
GCS_CONNECTION = (
    '{"conn_type": "google_cloud_platform", '
    '"extra": {"is_anonymous": true, "project": "test-project"}}'
)
WORKERS = ("worker-a", "worker-b")
INTERVAL = timedelta(seconds=3)
STEPS_PER_CHECKPOINT = 15
# Seconds without a heartbeat after which the scheduler fails a task (SIGKILLed workers send
# none); well above the gaps a loaded 2-core machine leaves between a live task's heartbeats.
HEARTBEAT_TIMEOUT = 30
FINISH_TIMEOUT = 420
BACKFILL_DAG = """
import datetime

import pendulum

from airflow_tf_export.dags.backfill import backfill_dag

{dag_id} = backfill_dag(
    dag_id={dag_id!r},
    model_dir={model_dir!r},
    model_definition={definition!r},
    evaluate=None,
    exporters=[{{"strategy": "best", "name": "best", "exports_to_keep": None}}],
    retention={retention!r},
    start_date=pendulum.parse({start!r}),
    end_date=pendulum.parse({end!r}),
    schedule=datetime.timedelta(seconds={interval}),
    deferrable=True,
    poke_interval=1.0,
    max_active_tis_per_dag=2,
    default_args={{"retries": 2, "retry_delay": datetime.timedelta(seconds=2)}},
    # About Celery workers; validation (a process per task): test_operators_validation.py.
    validate=False,
)
"""
RETRAINING_DAG = """
import pendulum

from airflow_tf_export.dags.retraining import retraining_dag

{dag_id} = retraining_dag(
    dag_id={dag_id!r},
    model_dir={model_dir!r},
    model_definition={definition!r},
    train="airflow_tf_export.example.train:train",
    evaluate="airflow_tf_export.example.evaluate:evaluate",
    train_kwargs={{"steps": {steps}}},
    exporters=[{{"strategy": "best", "name": "retrained"}}],
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    deferrable=True,
    poke_interval=1.0,
    validate=False,
)
"""


@dataclass
class Deployment:
    """The module's Airflow on Celery, its workers' dirs, the GCS proxy and a bucket."""

    stack: AirflowStack
    workdirs: dict[str, Path]
    proxy: GenerationEnforcingProxy
    bucket: str
    tmp: Path


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, gcs_emulator: str) -> Iterator[Deployment]:
    missing = [r for r in (postgres_unreachable_reason(), celery_unavailable_reason()) if r]
    if missing:
        pytest.skip("the CeleryExecutor end-to-end tests are skipped: " + "; ".join(missing))
    tmp = tmp_path_factory.mktemp("celery")
    bucket = f"celery-{int(time.time())}"
    emulator_client().create_bucket(bucket)
    dags_folder = tmp / "dags"
    dags_folder.mkdir()
    broker = CeleryBroker()
    with fresh_database() as url, GenerationEnforcingProxy(gcs_emulator) as proxy:
        stack = AirflowStack(
            home=tmp / "airflow-home",
            dags_folder=dags_folder,
            database_url=url,
            celery=broker,
            extra_env={
                "STORAGE_EMULATOR_HOST": proxy.url,
                "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": GCS_CONNECTION,
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            },
        )
        try:
            stack.start(workers=WORKERS)
            workdirs = {name: stack.worker_dir(name) for name in WORKERS}
            yield Deployment(stack, workdirs, proxy, bucket, tmp)
        finally:
            stack.stop()
            broker.forget()


# --- the data: checkpoints dated by interval, evaluated here ------------------------------


@dataclass(frozen=True)
class History:
    """Checkpoints uploaded one interval at a time, and their local originals."""

    model_dir: str
    local_dir: Path
    names: list[str]  # checkpoint prefixes by step, e.g. "ckpt-15"
    start: datetime
    intervals: int


def _train_and_upload(deployment: Deployment, prefix: str, per_interval: Sequence[int]) -> History:
    """Train the checkpoints locally, then upload those of interval k during interval k
    (data files, then the `.index` that dates it), and the state file last."""
    from airflow_tf_export.example.train import train

    local_dir = deployment.tmp / f"{prefix}-local"
    names = [
        Path(train(model_dir=str(local_dir), steps=STEPS_PER_CHECKPOINT)["checkpoint_path"]).name
        for _ in range(sum(per_interval))
    ]
    model_dir = f"gs://{deployment.bucket}/{prefix}"
    storage = storage_for(model_dir)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    remaining = iter(names)
    for k, count in enumerate(per_interval):
        _sleep_until(start + k * INTERVAL + timedelta(seconds=0.3))
        for name in [next(remaining) for _ in range(count)]:
            files = sorted(local_dir.glob(f"{name}.*"), key=lambda p: p.suffix == ".index")
            for path in files:
                storage.write_bytes(storage.join(model_dir, path.name), path.read_bytes())
        assert datetime.now(UTC) < start + (k + 1) * INTERVAL, "uploads overran an interval"
    state = (local_dir / "checkpoint").read_bytes()
    storage.write_bytes(storage.join(model_dir, "checkpoint"), state)
    return History(model_dir, local_dir, names, start, len(per_interval))


def _sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def _evaluate(history: History, names: Sequence[str]) -> None:
    """Evaluate checkpoints in the GCS model dir and in its local copy (same code, same
    process: the same metrics)."""
    from airflow_tf_export.example.evaluate import evaluate

    for name in names:
        for model_dir in (history.model_dir, str(history.local_dir)):
            evaluate(model_dir=model_dir, checkpoint_path=f"{model_dir}/{name}")


def _write_backfill_dag(
    deployment: Deployment, dag_id: str, history: History, retention: dict[str, Any] | None
) -> None:
    end = history.start + history.intervals * INTERVAL
    # Parsed only once the last interval is long past: unpausing the DAG (catchup off) then
    # schedules no run of its own inside the backfilled range.
    _sleep_until(end + 2 * INTERVAL)
    (deployment.stack.dags_folder / f"{dag_id}.py").write_text(
        textwrap.dedent(
            BACKFILL_DAG.format(
                dag_id=dag_id,
                model_dir=history.model_dir,
                definition=DEFINITION,
                retention=retention,
                start=history.start.isoformat(),
                end=end.isoformat(),
                interval=INTERVAL.total_seconds(),
            )
        )
    )


def _wait_parsed(stack: AirflowStack, *dag_ids: str) -> None:
    wait_until(
        lambda: (
            len(stack.query("select dag_id from dag where dag_id in %s", dag_ids)) == len(dag_ids)
        ),
        timeout=120,
        what=f"the dag-processor to parse {dag_ids}",
    )


def _backfill(stack: AirflowStack, dag_id: str, history: History, *extra: str) -> None:
    last = history.start + (history.intervals - 1) * INTERVAL
    stack.backfill(dag_id, history.start.isoformat(), last.isoformat(), *extra)


def _run_states(stack: AirflowStack, dag_id: str) -> list[str]:
    return [r[0] for r in stack.query("select state from dag_run where dag_id = %s", dag_id)]


def _wait_finished(stack: AirflowStack, runs: dict[str, int]) -> None:
    """Until every DAG has its number of runs, all finished; a failure shows the states."""

    def finished() -> bool:
        stack.assert_components_alive()
        return all(
            len(states := _run_states(stack, dag_id)) == count
            and all(s in ("success", "failed") for s in states)
            for dag_id, count in runs.items()
        )

    try:
        wait_until(finished, timeout=FINISH_TIMEOUT, what=f"the runs of {sorted(runs)}")
    except TimeoutError:
        rows = stack.query(
            "select dag_id, run_id, task_id, map_index, try_number, state, hostname "
            "from task_instance order by dag_id, run_id"
        )
        pytest.fail(
            "runs did not finish:\n"
            + "\n".join(map(str, rows))
            + "\nscheduler log:\n"
            + stack.log_tail("scheduler")
        )


def _task_instances(stack: AirflowStack, dag_id: str) -> list[dict[str, Any]]:
    columns = ("task_id", "map_index", "run_id", "state", "hostname", "try_number")
    rows = stack.query(f"select {', '.join(columns)} from task_instance where dag_id = %s", dag_id)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _assert_all_succeeded(stack: AirflowStack, dag_id: str, runs: int) -> list[dict[str, Any]]:
    """Every run succeeded; every task succeeded, but exports that published nothing
    (skipped). The task instances are returned."""
    assert _run_states(stack, dag_id) == ["success"] * runs, dag_id
    tis = _task_instances(stack, dag_id)
    not_ok = [
        ti
        for ti in tis
        if ti["state"] != "success"
        and not (ti["task_id"].startswith("export_") and ti["state"] == "skipped")
    ]
    assert not not_ok, (dag_id, not_ok)
    return tis


# --- the reference and the checks of an exporter dir ----------------------------------------


def _sequential_reference(history: History) -> list[ExportMetadata]:
    """Export the checkpoints one after the other by step, as one sequential run would."""
    from airflow_tf_export.cli.main import main

    for name in history.names:
        main(
            [
                "export",
                "--model-dir",
                str(history.local_dir),
                "--name",
                "best",
                "--strategy",
                "best",
                "--model-definition",
                DEFINITION,
                "--checkpoint",
                str(history.local_dir / name),
                "--exports-to-keep",
                "0",
            ]
        )
    return _committed(str(history.local_dir / "export" / "best"))


def _committed(uri: str) -> list[ExportMetadata]:
    return ExporterDir(storage_for(uri), uri).committed()


def _facts(meta: ExportMetadata) -> tuple[int, str, dict[str, Any]]:
    """What a version is, wherever it was published: step, checkpoint name and metrics."""
    metrics = {} if meta.eval_result is None else meta.eval_result.to_dict()["metrics"]
    return meta.global_step, Path(meta.checkpoint_path).name, metrics


def _best(versions: Sequence[ExportMetadata]) -> ExportMetadata:
    return min(versions, key=lambda m: m.eval_result.metrics["loss"] if m.eval_result else 0)


def _assert_every_version_verifies(uri: str) -> list[ExportMetadata]:
    """Each committed version's record and files check out (every file's CRC32C)."""
    exporter = ExporterDir(storage_for(uri), uri)
    state = exporter.scan()
    assert not state.invalid, state.invalid
    for meta in state.committed:
        exporter.verify(meta.version)
    return list(state.committed)


def _variable_values(version_uri: str) -> list[list[float]]:
    """The values of every float variable of a published SavedModel, sorted, read by
    TensorFlow from a local copy."""
    import tensorflow as tf

    storage = storage_for(version_uri)
    with tempfile.TemporaryDirectory(prefix="celery-e2e-") as local:
        storage.download_dir(version_uri, Path(local))
        reader = tf.train.load_checkpoint(str(Path(local) / "variables" / "variables"))
        return sorted(
            reader.get_tensor(key).ravel().tolist()
            for key, dtype in reader.get_variable_to_dtype_map().items()
            if dtype.is_floating
        )


def _published_by_tasks(stack: AirflowStack, dag_id: str) -> list[str]:
    """The checkpoint of every version an export task instance reported as new."""
    rows = stack.query(
        "select value from xcom where dag_id = %s and task_id = 'export_best' "
        "and key = 'return_value'",
        dag_id,
    )
    outcomes = [v if isinstance(v, dict) else json.loads(v) for (v,) in rows]
    return [Path(o["checkpoint_path"]).name for o in outcomes if o.get("new_version")]


# --- the tests ----------------------------------------------------------------------------


def test_backfill_and_retraining_on_two_celery_workers(deployment: Deployment) -> None:
    stack = deployment.stack
    backfill, retrain = "celery_backfill", "celery_retrain"
    history = _train_and_upload(deployment, "model", per_interval=(2, 1, 1, 2, 1, 1))
    # The two newest are evaluated only once a sensor waits in the triggerer for them.
    _evaluate(history, history.names[:-2])
    _write_backfill_dag(deployment, backfill, history, retention=None)
    (stack.dags_folder / f"{retrain}.py").write_text(
        textwrap.dedent(
            RETRAINING_DAG.format(
                dag_id=retrain,
                model_dir=history.model_dir,
                definition=DEFINITION,
                steps=STEPS_PER_CHECKPOINT,
            )
        )
    )
    _wait_parsed(stack, backfill, retrain)

    started = time.monotonic()
    # Newest first: the sensors of the checkpoints not evaluated yet wait from the start.
    _backfill(stack, backfill, history, "--max-active-runs", "3", "--run-backwards")
    stack.airflow("dags", "unpause", retrain)
    stack.airflow("dags", "trigger", retrain)
    wait_until(
        lambda: bool(stack.query("select 1 from task_instance where state = 'deferred'")),
        timeout=180,
        what="a sensor to wait deferred in the triggerer",
    )
    _evaluate(history, history.names[-2:])
    _wait_finished(stack, {backfill: history.intervals})
    backfill_seconds = time.monotonic() - started
    _wait_finished(stack, {backfill: history.intervals, retrain: 1})

    tis = _assert_all_succeeded(stack, backfill, history.intervals)
    retrain_tis = _assert_all_succeeded(stack, retrain, 1)
    exports = [ti for ti in tis if ti["task_id"] == "export_best"]
    assert len(exports) == len(history.names)
    assert {ti["hostname"] for ti in exports} == set(WORKERS), exports
    per_worker = Counter(ti["hostname"] for ti in [*tis, *retrain_tis])
    print(
        f"\nCelery backfill of {history.intervals} intervals ({len(history.names)} "
        f"checkpoints, 3 runs at a time): {backfill_seconds:.1f}s; task instances per "
        f"worker: {dict(per_worker)}; exports per worker: "
        f"{dict(Counter(ti['hostname'] for ti in exports))}"
    )
    # A sensor waited deferred: the triggerer (on its own host) logged the event it fired.
    fired = [
        log
        for log in (stack.home / "logs").glob("dag_id=*/run_id=*/task_id=wait_for_eval/*/*.log*")
        if "Trigger fired event" in log.read_text()
    ]
    assert fired, "no sensor resumed from the triggerer"

    # No checkpoint published twice, and every version verifies.
    exported = _assert_every_version_verifies(f"{history.model_dir}/export/best")
    published = _published_by_tasks(stack, backfill)
    assert sorted(published) == sorted(Path(m.checkpoint_path).name for m in exported)
    assert max(Counter(published).values()) == 1, published

    # The same best version as the sequential reference run: step, metrics, variables.
    reference = _sequential_reference(history)
    best, reference_best = _best(exported), _best(reference)
    assert _facts(best) == _facts(reference_best)
    assert _variable_values(f"{history.model_dir}/export/best/{best.version}") == (
        _variable_values(str(history.local_dir / "export" / "best" / str(reference_best.version)))
    )

    # The retraining run trained on from the newest checkpoint and exported it, beside the
    # backfill in the same model dir, which never took its checkpoint.
    (retrained,) = _assert_every_version_verifies(f"{history.model_dir}/export/retrained")
    newest = int(history.names[-1].rpartition("-")[2])
    assert retrained.global_step == newest + STEPS_PER_CHECKPOINT
    assert all(m.global_step <= newest for m in exported)


def test_a_worker_killed_mid_export_is_retried_on_the_other(deployment: Deployment) -> None:
    """SIGKILL the worker whose export is uploading a version (holding the exporter lock,
    its version claimed): the scheduler fails the task for its missing heartbeats, the retry
    runs on the other worker, takes the lock once its lease expired, and publishes; the
    retention task removes the dead publish's claim and files (grace period 0)."""
    stack, proxy = deployment.stack, deployment.proxy
    dag_id = "celery_kill"
    history = _train_and_upload(deployment, "killed", per_interval=(1, 1, 1))
    _evaluate(history, history.names)
    retention = {"keep": {"newest": 10}, "staging_grace_seconds": 0}
    _write_backfill_dag(deployment, dag_id, history, retention=retention)
    _wait_parsed(stack, dag_id)

    holding, released = threading.Event(), threading.Event()
    version_files = "killed/export/best/"

    def hold_first_version_upload(method: str, name: str | None) -> None:
        if method == "POST" and name and name.startswith(version_files) and not holding.is_set():
            rest = name[len(version_files) :]
            if rest.split("/", 1)[0].isdigit():
                holding.set()
                released.wait(timeout=300)

    proxy.before_forward = hold_first_version_upload
    try:
        _backfill(stack, dag_id, history, "--max-active-runs", "1")
        assert holding.wait(timeout=300), "no export started uploading a version"
        (running,) = [
            ti
            for ti in _task_instances(stack, dag_id)
            if ti["task_id"] == "export_best" and ti["state"] == "running"
        ]
        killed = running["hostname"]
        stack.kill(f"worker-{killed}")
    finally:
        released.set()
        proxy.before_forward = None
    (survivor,) = set(WORKERS) - {killed}
    _wait_finished(stack, {dag_id: history.intervals})

    tis = _assert_all_succeeded(stack, dag_id, history.intervals)
    (retried,) = [
        ti
        for ti in tis
        if (ti["task_id"], ti["run_id"], ti["map_index"])
        == (running["task_id"], running["run_id"], running["map_index"])
    ]
    assert retried["try_number"] > running["try_number"]
    assert retried["hostname"] == survivor
    assert all(ti["hostname"] == survivor for ti in tis if ti["try_number"] > 1)

    # Exactly the versions of a clean run, each verifying.
    exporter_uri = f"{history.model_dir}/export/best"
    versions = _assert_every_version_verifies(exporter_uri)
    reference = _sequential_reference(history)
    assert sorted(map(_facts, versions)) == sorted(map(_facts, reference))

    # What the dead publish left in GCS is gone: its claim and files were deleted by the
    # retention task, its lock expired and was taken over (the last holder released it).
    # Beside the versions only the exporter dir's index remains.
    storage = storage_for(exporter_uri)
    assert sorted(e.name for e in storage.list_dir(exporter_uri)) == sorted(
        [INDEX_NAME, *(str(m.version) for m in versions)]
    )
    # On the dead host's own disk its local copy of the SavedModel stays (its TMPDIR).
    leftovers = list((deployment.workdirs[killed] / "tmp").glob("airflow-tf-export-*"))
    print(
        f"\nkilled {killed} while it uploaded a version of {running['run_id']}; retried as "
        f"try {retried['try_number']} on {retried['hostname']}; versions: "
        f"{[f[:2] for f in sorted(map(_facts, versions))]}; left in the dead host's TMPDIR: "
        f"{[p.name for p in leftovers]}"
    )
    assert leftovers
