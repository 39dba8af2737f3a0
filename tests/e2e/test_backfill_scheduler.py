"""`airflow backfill create` over the backfill template on a real deployment.

PostgreSQL (a fresh database), scheduler with LocalExecutor, dag-processor, triggerer and
api-server run as subprocesses. Two DAGs of the template read two identical copies of the
same historical checkpoints: one is backfilled 3 runs at a time, newest interval first;
the other one run at a time, oldest first (the "one by one" reference). Both must end with
the same best version, and no checkpoint may ever be published twice by one exporter.

The test process plays the continuous evaluator (the DAGs have `evaluate=None`): it
evaluates the checkpoints, in a shuffled order, only once sensors wait deferred in the
triggerer, so the deferrable path through the real triggerer is always taken.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import textwrap
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import AirflowStack, wait_until

from airflow_tf_export.core.checkpoints import checkpoint_step
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.storage import storage_for
from airflow_tf_export.storage.exporter_dir import ExporterDir

FIRST_DAY = datetime(2024, 1, 1, tzinfo=UTC)
INTERVALS = 5
# Checkpoints per daily interval; the first checkpoint is evaluated before the backfill.
CHECKPOINTS_PER_DAY = (2, 1, 1, 2, 1)
STEPS_PER_CHECKPOINT = 15
PARALLEL, SEQUENTIAL = "backfill_parallel", "backfill_sequential"
KEEP = {"newest": 2}
BACKFILL_TIMEOUT = 300

DAG_FILE = """
import pendulum

from airflow_tf_export.dags.backfill import backfill_dag

for dag_id, model_dir in {dags!r}.items():
    globals()[dag_id] = backfill_dag(
        dag_id=dag_id,
        model_dir=model_dir,
        model_definition="airflow_tf_export.example.model:definition",
        evaluate=None,
        exporters=[{{"strategy": "best", "name": "best", "exports_to_keep": None}}],
        retention={{"keep": {keep!r}}},
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        end_date=pendulum.datetime(2024, 1, {last_day}, tz="UTC"),
        schedule="@daily",
        deferrable=True,
        poke_interval=1.0,
        max_active_tis_per_dag=2,
        # About the scheduler's backfill: each export task would start its own validating
        # process (tests/integration/operators/test_operators_validation.py covers it).
        validate=False,
    )
"""


def _train_historical_checkpoints(model_dir: Path) -> list[str]:
    """Real checkpoints, each dated inside its day; returns their prefixes by step."""
    from airflow_tf_export.example.train import train

    prefixes = []
    for day, count in enumerate(CHECKPOINTS_PER_DAY):
        for index in range(count):
            written = train(model_dir=str(model_dir), steps=STEPS_PER_CHECKPOINT)
            prefix = written["checkpoint_path"]
            when = (FIRST_DAY + timedelta(days=day, hours=6 + 6 * index)).timestamp()
            for path in model_dir.glob(Path(prefix).name + ".*"):
                os.utime(path, (when, when))
            prefixes.append(prefix)
    return prefixes


@pytest.fixture
def stack(tmp_path: Path, postgres_database: str, dags_folder: Path) -> Iterator[AirflowStack]:
    airflow = AirflowStack(
        home=tmp_path / "airflow-home", dags_folder=dags_folder, database_url=postgres_database
    )
    try:
        yield airflow
    finally:
        airflow.stop()


def _exported(model_dir: Path) -> list[ExportMetadata]:
    uri = str(model_dir / "export" / "best")
    return ExporterDir(storage_for(uri), uri).committed()


def _eval_steps(model_dir: Path) -> Counter[int]:
    """How many evaluations each step had (events with a loss value, read by TensorFlow)."""
    import tensorflow as tf

    counts: Counter[int] = Counter()
    for path in (model_dir / "eval").glob("*.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            if any(value.tag == "loss" for value in event.summary.value):
                counts[event.step] += 1
    return counts


def _published(stack: AirflowStack, dag_id: str) -> list[tuple[str, int]]:
    """(checkpoint, version) of every version an export task instance published."""
    rows = stack.query(
        "select value from xcom where dag_id = %s and task_id = 'export_best' "
        "and key = 'return_value'",
        dag_id,
    )
    published = []
    for (value,) in rows:
        outcome = value if isinstance(value, dict) else json.loads(value)
        if outcome.get("new_version") is not None:
            published.append((Path(outcome["checkpoint_path"]).name, outcome["new_version"]))
    return published


def _states(stack: AirflowStack, dag_id: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    runs = [r[0] for r in stack.query("select state from dag_run where dag_id = %s", dag_id)]
    tis = stack.query(
        "select task_id, map_index, run_id, state from task_instance where dag_id = %s", dag_id
    )
    return runs, tis


def test_parallel_backfill_ends_like_one_by_one(
    stack: AirflowStack, tmp_path: Path, dags_folder: Path
) -> None:
    parallel_dir, sequential_dir = tmp_path / "model-parallel", tmp_path / "model-sequential"
    from airflow_tf_export.example.evaluate import evaluate

    prefixes = _train_historical_checkpoints(parallel_dir)
    shutil.copytree(parallel_dir, sequential_dir)  # copy2 keeps the checkpoint times
    for model_dir in (parallel_dir, sequential_dir):
        evaluate(model_dir=str(model_dir), checkpoint_path=str(model_dir / Path(prefixes[0]).name))
    dags = {PARALLEL: str(parallel_dir), SEQUENTIAL: str(sequential_dir)}
    (dags_folder / "backfills.py").write_text(
        textwrap.dedent(DAG_FILE.format(dags=dags, keep=KEEP, last_day=INTERVALS + 1))
    )

    stack.start()
    both = (PARALLEL, SEQUENTIAL)
    wait_until(
        lambda: len(stack.query("select dag_id from dag where dag_id in %s", both)) == 2,
        timeout=120,
        what="the dag-processor to parse both DAGs",
    )
    last = (FIRST_DAY + timedelta(days=INTERVALS - 1)).date().isoformat()
    for dag_id, extra in (
        (PARALLEL, ["--max-active-runs", "3", "--run-backwards"]),
        (SEQUENTIAL, ["--max-active-runs", "1"]),
    ):
        stack.backfill(dag_id, FIRST_DAY.date().isoformat(), last, *extra)

    wait_until(
        lambda: bool(stack.query("select 1 from task_instance where state = 'deferred' limit 1")),
        timeout=120,
        what="a sensor to wait deferred in the triggerer",
    )
    pending = [p for p in prefixes[1:]]
    random.Random(7).shuffle(pending)
    for prefix in pending:
        for model_dir in (parallel_dir, sequential_dir):
            evaluate(model_dir=str(model_dir), checkpoint_path=str(model_dir / Path(prefix).name))

    def finished() -> bool:
        stack.assert_components_alive()
        runs = [s for d in (PARALLEL, SEQUENTIAL) for s in _states(stack, d)[0]]
        return len(runs) == 2 * INTERVALS and all(s in ("success", "failed") for s in runs)

    try:
        wait_until(finished, timeout=BACKFILL_TIMEOUT, what="both backfills to finish")
    except TimeoutError:
        pytest.fail(
            "backfills did not finish:\n"
            + "\n".join(str(r) for d in (PARALLEL, SEQUENTIAL) for r in _states(stack, d)[1])
            + "\nscheduler log:\n"
            + stack.log_tail("scheduler")
        )

    for dag_id in (PARALLEL, SEQUENTIAL):
        runs, tis = _states(stack, dag_id)
        assert runs == ["success"] * INTERVALS, (dag_id, runs)
        # An export of a checkpoint that is not better publishes nothing: skipped.
        not_ok = [
            ti for ti in tis if ti[3] != "success" and (ti[0], ti[3]) != ("export_best", "skipped")
        ]
        assert not not_ok, (dag_id, not_ok)
        mapped = Counter(ti[0] for ti in tis if ti[1] >= 0)
        assert mapped["wait_for_eval"] == mapped["export_best"] == len(prefixes)

    # The sensor deferred through the real triggerer at least once.
    sensor_logs = (stack.home / "logs").glob("dag_id=*/run_id=*/task_id=wait_for_eval/*/*.log")
    assert any("Trigger fired event" in log.read_text() for log in sensor_logs)

    # Every checkpoint evaluated exactly once, the pre-evaluated one included.
    for model_dir in (parallel_dir, sequential_dir):
        assert _eval_steps(model_dir) == {checkpoint_step(p): 1 for p in prefixes}

    # Same best version content, same retention invariants.
    parallel, sequential = _exported(parallel_dir), _exported(sequential_dir)
    best_of = {
        d: min(v, key=lambda m: m.eval_result.metrics["loss"])
        for d, v in (("parallel", parallel), ("sequential", sequential))
    }
    all_losses = {}
    reader = EvalDirReader(storage_for(str(parallel_dir)), str(parallel_dir))
    reader.refresh()
    for result in reader.results():
        all_losses[result.step] = result.metrics["loss"]
    best_step = min(all_losses, key=all_losses.__getitem__)
    for versions in (parallel, sequential):
        best = min(versions, key=lambda m: m.eval_result.metrics["loss"])
        assert best.global_step == best_step
        assert len(versions) <= KEEP["newest"] + 1
        newest = max(versions, key=lambda m: m.version)
        assert newest in versions
    assert best_of["parallel"].eval_result.metrics == best_of["sequential"].eval_result.metrics
    assert (
        Path(best_of["parallel"].checkpoint_path).name
        == Path(best_of["sequential"].checkpoint_path).name
    )
    assert _variable_values(parallel_dir, best_of["parallel"]) == _variable_values(
        sequential_dir, best_of["sequential"]
    )

    # No checkpoint was ever published twice by the exporter.
    for dag_id in (PARALLEL, SEQUENTIAL):
        published = _published(stack, dag_id)
        assert published, dag_id
        counts = Counter(checkpoint for checkpoint, _ in published)
        assert max(counts.values()) == 1, (dag_id, published)


def _variable_values(model_dir: Path, meta: ExportMetadata) -> list[list[float]]:
    """The values of every variable of a published SavedModel, sorted (read by TensorFlow;
    the keys' numbering is not stable from one export to the next)."""
    import tensorflow as tf

    variables = model_dir / "export" / "best" / str(meta.version) / "variables" / "variables"
    reader = tf.train.load_checkpoint(str(variables))
    return sorted(
        reader.get_tensor(key).ravel().tolist()
        for key, dtype in reader.get_variable_to_dtype_map().items()
        if dtype.is_floating
    )
