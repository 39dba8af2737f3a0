"""DAG template: evaluate and export historical checkpoints, one data interval per DAG run.

Each run selects the checkpoints of `model_dir` (TF checkpoint prefixes of the series its
`checkpoint` state file lists, or Keras `<name>-<step>.weights.h5` files when the model
definition restores those) whose time (the modification time of their `.index` file, as
`tf.train.get_checkpoint_mtimes` reports it, or of the weights file) falls in the run's data
interval, or whose global step is in the run's `min_step`..`max_step` params when either is
given. A run that selects none (the trainer deleted the interval's checkpoints, keeping
only its newest ones, or has written none there yet) is skipped, its log naming the
checkpoints that are there.
Then, with dynamic task mapping, one task instance per checkpoint:

    select_checkpoints -> evaluate (only checkpoints without an eval result yet)
        -> wait_for_eval (EvalMetricsSensor, deferrable by default)
        -> export_<name> (one mapped task per exporter) -> retention

With `evaluate=None` another job (a continuous evaluator) writes the eval results and the
sensors wait for it in the triggerer.

Re-running an interval changes nothing: evaluated checkpoints are not evaluated again and
every strategy returns the version it already published for a checkpoint. The best exporter
decides from committed versions only, so backfilling intervals in parallel or in any order
ends with the same best version. (A latest exporter never publishes a checkpoint older than
its newest version, so with it the outcome does depend on the order.) Versions another writer
left in an exporter dir, such as a tf.estimator's exports, count as foreign versions: no step
they hold is exported again, and Best publishes nothing worse than the best of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import (
    DAG,
    Param,
    TriggerRule,
    conf,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_tf_export.core.eval_wait import parse_eval_wait
from airflow_tf_export.core.strategies import DEFAULT_EVENT_FILE_PATTERN
from airflow_tf_export.dags.common import (
    RETENTION_OWNED,
    ExporterSpec,
    data_interval_timetable,
    eval_sensor_arguments,
    exporter_dir_uri,
    import_callable,
    parse_exporter_specs,
    positive_int,
    template_arguments,
    validate_exporter_dirs,
    validate_import_string,
    validate_model_dir,
)
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.events.eval_search import find_eval_result
from airflow_tf_export.hooks.storage import StorageHook
from airflow_tf_export.operators.export import DEFAULT_CONN_ID
from airflow_tf_export.operators.retention import RetentionOperator
from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor
from airflow_tf_export.storage.checkpoints import list_checkpoints

# Deleting checkpoints while other intervals of the same backfill still read them would
# make the outcome depend on the order the runs happen to finish in.
_CHECKPOINT_RETENTION_KEYS = (
    "model_dir",
    "checkpoints_to_keep",
    "checkpoint_prefix",
    "keep_exported_checkpoints",
)
# Export operator arguments the template sets from its own arguments.
_EXPORT_OWNED = ("max_active_tis_per_dag",)
# DAG arguments the template sets: catchup stays off (past intervals are run with
# `airflow backfill create`), params are the step range.
_DAG_OWNED = ("catchup", "params")


@dataclass(frozen=True)
class CheckpointFile:
    """A checkpoint of the model dir: its URI, global step and time (epoch seconds)."""

    path: str
    step: int
    mtime: float | None


def select_checkpoints_in_window(
    checkpoints: Iterable[CheckpointFile],
    *,
    start: float,
    end: float,
    min_step: int | None = None,
    max_step: int | None = None,
) -> list[str]:
    """Checkpoint paths by ascending step: those with `min_step <= step <= max_step` when
    either bound is given, else those whose time is in `[start, end)`."""
    by_step = min_step is not None or max_step is not None
    if by_step and min_step is not None and max_step is not None and min_step > max_step:
        raise ValueError(f"min_step {min_step} is greater than max_step {max_step}")
    chosen = []
    for checkpoint in sorted(checkpoints, key=lambda c: c.step):
        if by_step:
            if (min_step is None or checkpoint.step >= min_step) and (
                max_step is None or checkpoint.step <= max_step
            ):
                chosen.append(checkpoint.path)
            continue
        if checkpoint.mtime is None:
            raise ValueError(
                f"checkpoint {checkpoint.path!r} has no modification time; select by step "
                "instead (the min_step / max_step params)"
            )
        if start <= checkpoint.mtime < end:
            chosen.append(checkpoint.path)
    return chosen


def nothing_selected_reason(
    checkpoints: Iterable[CheckpointFile],
    *,
    model_dir: str,
    start: float,
    end: float,
    min_step: int | None = None,
    max_step: int | None = None,
) -> str:
    """Why a run selected no checkpoint, naming the checkpoints that are there: a model_dir
    keeps only its newest checkpoints (tf.estimator's `keep_checkpoint_max`, Keras or
    `CheckpointManager`'s `max_to_keep`), so an interval before them had its checkpoints
    deleted; one after them has none yet; one between them had none written, or deleted."""
    present = sorted(checkpoints, key=lambda c: c.step)
    if min_step is not None or max_step is not None:
        wanted = f"a step in {_bound(min_step)}..{_bound(max_step)}"
    else:
        wanted = f"its time in the data interval [{_utc(start)}, {_utc(end)})"
    if not present:
        return f"no checkpoint with {wanted}: {model_dir} holds no complete checkpoint"
    times = sorted(c.mtime for c in present if c.mtime is not None)
    written = f", written {_utc(times[0])} .. {_utc(times[-1])}" if times else ""
    if min_step is not None or max_step is not None:
        before = max_step is not None and max_step < present[0].step
        after = min_step is not None and min_step > present[-1].step
    else:
        before = bool(times) and end <= times[0]
        after = bool(times) and start > times[-1]
    if before:
        why = (
            "older ones were deleted by the trainer, which keeps only its newest checkpoints, "
            "so nothing is left to export here"
        )
    elif after:
        why = "the trainer has written none there yet"
    else:
        why = (
            "none was written there, or the trainer deleted it (it keeps only its newest "
            "checkpoints)"
        )
    return (
        f"no checkpoint with {wanted}: the {len(present)} checkpoints of {model_dir} are of "
        f"steps {present[0].step}..{present[-1].step}{written}; {why}"
    )


def _bound(step: int | None) -> str:
    return "" if step is None else str(step)


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def check_map_length(paths: Sequence[str], max_map_length: int) -> None:
    """ValueError when there are more checkpoints than one mapped task may expand to."""
    if len(paths) > max_map_length:
        raise ValueError(
            f"{len(paths)} checkpoints selected, more than [core] max_map_length "
            f"({max_map_length}) mapped task instances: use a shorter schedule interval, a "
            "step range (min_step / max_step params) or raise max_map_length"
        )


def select_checkpoints(*, model_dir: str, model_definition: str, gcp_conn_id: str) -> list[str]:
    """Task: the checkpoints of this run's data interval (or step range), by step, of the
    kind the model definition restores (TF checkpoints or Keras weights files); skipped, with
    the reason, when there is none."""
    from airflow_tf_export.savedmodel import resolve_definition

    context = get_current_context()
    params = context["params"]
    start, end = context["data_interval_start"], context["data_interval_end"]
    if start is None or end is None:
        raise AirflowFailException("backfill runs need a data interval; schedule the DAG by time")
    try:
        storage = StorageHook(gcp_conn_id=gcp_conn_id).storage_for(model_dir)
        keras_weights = resolve_definition(model_definition).keras_weights
        present = [
            CheckpointFile(c.uri, c.step, c.mtime)
            for c in list_checkpoints(storage, model_dir, keras_weights=keras_weights)
            if c.complete
        ]
        min_step, max_step = params.get("min_step"), params.get("max_step")
        paths = select_checkpoints_in_window(
            present,
            start=start.timestamp(),
            end=end.timestamp(),
            min_step=min_step,
            max_step=max_step,
        )
        check_map_length(paths, conf.getint("core", "max_map_length"))
    except ValueError as error:
        raise AirflowFailException(str(error)) from None
    if not paths:
        raise AirflowSkipException(
            nothing_selected_reason(
                present,
                model_dir=model_dir,
                start=start.timestamp(),
                end=end.timestamp(),
                min_step=min_step,
                max_step=max_step,
            )
        )
    print(f"{len(paths)} checkpoints between {start} and {end}: {paths}")
    return paths


def evaluate_checkpoint(
    checkpoint_path: str,
    *,
    model_dir: str,
    evaluate: str,
    evaluate_kwargs: Mapping[str, Any],
    required_metrics: Sequence[str],
    event_file_pattern: str,
    gcp_conn_id: str,
) -> dict[str, Any]:
    """Task: evaluate one checkpoint unless its eval result is already in the event files."""
    storage = StorageHook(gcp_conn_id=gcp_conn_id).storage_for(model_dir)
    wait = parse_eval_wait(checkpoint_path=checkpoint_path, required_metrics=required_metrics)
    existing = find_eval_result(
        EvalDirReader(storage, model_dir, event_file_pattern), wait, model_dir
    )
    if existing is not None:
        print(f"{checkpoint_path} already evaluated at step {existing.step}: not evaluating")
        return {"evaluated": False, "eval_result": existing.to_dict()}
    evaluator = import_callable(evaluate, argument="evaluate")
    result = evaluator(model_dir=model_dir, checkpoint_path=checkpoint_path, **evaluate_kwargs)
    return {"evaluated": True, "eval_result": result}


def _check_export_spec(
    spec: ExporterSpec, model_dir: str, model_definition: str, gcp_conn_id: str
) -> None:
    """ValueError for a spec its mapped export tasks would fail on. `partial()` runs none of
    the operator's own checks, so one unmapped operator is built (and dropped) to run them
    now (exports_to_keep, max_steps, modes, comparison, ...), not in every mapped task."""
    template_arguments(spec.options, argument=f"exporter spec {spec.name!r}", owned=_EXPORT_OWNED)
    spec.operator_class(
        task_id=spec.task_id,
        name=spec.name,
        model_dir=model_dir,
        model_definition=model_definition,
        gcp_conn_id=gcp_conn_id,
        **spec.operator_options(),
    )


def backfill_dag(
    *,
    dag_id: str,
    model_dir: str,
    model_definition: str,
    exporters: Sequence[Mapping[str, Any]],
    start_date: datetime,
    end_date: datetime | None = None,
    schedule: str | timedelta = "@daily",
    timezone: str = "UTC",
    evaluate: str | None = None,
    evaluate_kwargs: Mapping[str, Any] | None = None,
    required_metrics: Sequence[str] = ("loss",),
    event_file_pattern: str = DEFAULT_EVENT_FILE_PATTERN,
    deferrable: bool = True,
    eval_timeout: timedelta | float = timedelta(hours=1),
    poke_interval: float = 5.0,
    sensor_retries: int = 2,
    max_active_tis_per_dag: int = 2,
    retention: Mapping[str, Any] | None = None,
    gcp_conn_id: str = DEFAULT_CONN_ID,
    validate: bool = True,
    **dag_kwargs: Any,
) -> DAG:
    """A DAG that evaluates and exports the checkpoints of each data interval.

    :param model_dir: local path or ``gs://bucket/prefix`` with the checkpoints.
    :param model_definition: import string of the model definition used for export (a
        ModelDefinition or an estimator.Estimator).
    :param exporters: exporter specs, e.g. ``[{"strategy": "best", "name": "best"}]``.
    :param schedule: a cron expression or preset, or a timedelta: the data intervals.
    :param timezone: IANA time zone name of a cron schedule.
    :param evaluate: import string of ``evaluate(*, model_dir, checkpoint_path, **kwargs)``
        writing the eval event files; None when another job evaluates the checkpoints.
    :param required_metrics: metrics an eval result must have to count (for the sensor and
        for "already evaluated"); every metric a best exporter compares (its ``comparison``
        metric, ``loss`` for the default compare_fn) is added. A list of names.
    :param eval_timeout: how long each sensor waits: a timedelta or a number of seconds.
    :param max_active_tis_per_dag: cap on concurrent evaluations and exports, across runs.
    :param retention: RetentionOperator arguments for the exporter dirs (``keep``,
        ``staging_grace_seconds``); checkpoints are never deleted by a backfill.
    :param poke_interval: seconds between two looks of the eval sensor (a number > 0).
    :param sensor_retries: retries of the eval sensor, an integer >= 0 (see
        apache/airflow#71502).
    :param validate: validate each export in a fresh process before it is published
        (docs/validation.md); an exporter spec's own ``validate`` wins.
    :param dag_kwargs: other ``DAG`` arguments (tags, default_args, max_active_runs, ...);
        not ``catchup`` or ``params``, which the template sets.
    """
    specs = parse_exporter_specs(exporters, validate=validate)
    validate_model_dir(model_dir)
    validate_exporter_dirs(model_dir, specs)
    validate_import_string(model_definition, argument="model_definition")
    if evaluate is not None:
        validate_import_string(evaluate, argument="evaluate")
    evaluate_arguments = template_arguments(
        {} if evaluate_kwargs is None else evaluate_kwargs,
        argument="evaluate_kwargs",
        owned=["model_dir", "checkpoint_path"],
    )
    if retention is not None:
        retention = template_arguments(retention, argument="retention", owned=RETENTION_OWNED)
        refused = [key for key in _CHECKPOINT_RETENTION_KEYS if key in retention]
        if refused:
            raise ValueError(
                f"backfill retention must not delete checkpoints other intervals still read; "
                f"remove {refused} from {dict(retention)!r}"
            )
    template_arguments(dag_kwargs, argument="DAG arguments", owned=_DAG_OWNED)
    positive_int(max_active_tis_per_dag, argument="max_active_tis_per_dag")
    for spec in specs:
        _check_export_spec(spec, model_dir, model_definition, gcp_conn_id)
    timetable = data_interval_timetable(schedule, timezone)
    sensor_arguments = eval_sensor_arguments(
        model_dir=model_dir,
        specs=specs,
        required_metrics=required_metrics,
        thresholds=None,
        event_file_pattern=event_file_pattern,
        gcp_conn_id=gcp_conn_id,
        deferrable=deferrable,
        poke_interval=poke_interval,
        eval_timeout=eval_timeout,
        sensor_retries=sensor_retries,
    )
    params = {
        "min_step": Param(None, type=["null", "integer"], description="lowest step to take"),
        "max_step": Param(None, type=["null", "integer"], description="highest step to take"),
    }
    with DAG(
        dag_id=dag_id,
        schedule=timetable,
        start_date=start_date,
        end_date=end_date,
        catchup=False,
        params=params,
        **dag_kwargs,
    ) as dag:
        selected = task(task_id="select_checkpoints")(select_checkpoints)(
            model_dir=model_dir, model_definition=model_definition, gcp_conn_id=gcp_conn_id
        )
        waited = EvalMetricsSensor.partial(
            **sensor_arguments,
            map_index_template="{{ task.checkpoint_path }}",
        ).expand(checkpoint_path=selected)
        if evaluate is not None:
            evaluated = (
                task(task_id="evaluate", max_active_tis_per_dag=max_active_tis_per_dag)(
                    evaluate_checkpoint
                )
                .partial(
                    model_dir=model_dir,
                    evaluate=evaluate,
                    evaluate_kwargs=evaluate_arguments,
                    required_metrics=sensor_arguments["required_metrics"],
                    event_file_pattern=event_file_pattern,
                    gcp_conn_id=gcp_conn_id,
                )
                .expand(checkpoint_path=selected)
            )
            evaluated >> waited
        exports = []
        for spec in specs:
            partial = spec.operator_class.partial(
                task_id=spec.task_id,
                name=spec.name,
                model_dir=model_dir,
                model_definition=model_definition,
                gcp_conn_id=gcp_conn_id,
                max_active_tis_per_dag=max_active_tis_per_dag,
                **spec.operator_options(),
            )
            export = (
                partial.expand(eval_result=waited.output)
                if spec.strategy == "best"
                else partial.expand(checkpoint_path=selected)
            )
            waited >> export
            exports.append(export)
        if retention is not None:
            exports >> RetentionOperator(
                task_id="retention",
                exporter_dirs=[exporter_dir_uri(model_dir, spec) for spec in specs],
                gcp_conn_id=gcp_conn_id,
                trigger_rule=TriggerRule.NONE_FAILED,
                **retention,
            )
    return dag
