"""DAG template: scheduled retraining with evaluation, gated export and retention.

    train -> evaluate -> wait_for_eval -> compare_<best> -> export_<best> -> retention
                                       -> export_<latest / final> ------->

`train` and `evaluate` are pluggable: an import string `"package.module:attribute"` of a
callable run inside a Python task, or a factory the DAG author supplies that returns an
operator (for example one that trains on a cluster). Each best exporter is gated by a
comparison with its best committed version, so it exports only a better model; latest and
final exporters decide by their own strategy. Retention runs whether or not anything was
exported (it only waits for no export to have failed).

Contracts:
- train callable: `train(*, model_dir, **train_kwargs)` returns a dict with
  `checkpoint_path`; a train operator's XCom return value must be such a dict.
- evaluate callable: `evaluate(*, model_dir, checkpoint_path, **evaluate_kwargs)` writes
  the eval event files; an evaluate factory is called with `task_id`, `model_dir` and
  `checkpoint_path` (a template rendering to the trained checkpoint). With `evaluate=None`
  another job evaluates and the sensor waits for it.
- the evaluation records the checkpoint it read as the text summary `checkpoint_path`, as
  Estimator evaluations did (`airflow_tf_export.example.evaluate` shows how): the sensor
  finds the trained checkpoint's result by it, and says so in its log while waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, BaseOperator, TriggerRule, XComArg, conf, task

from airflow_tf_export.core.strategies import DEFAULT_EVENT_FILE_PATTERN
from airflow_tf_export.dags.common import (
    RETENTION_OWNED,
    ExporterSpec,
    eval_sensor_arguments,
    exporter_dir_uri,
    import_callable,
    parse_exporter_specs,
    template_arguments,
    validate_exporter_dirs,
    validate_import_string,
    validate_model_dir,
)
from airflow_tf_export.operators.compare import CompareBranchOperator
from airflow_tf_export.operators.export import DEFAULT_CONN_ID
from airflow_tf_export.operators.retention import RetentionOperator
from airflow_tf_export.sensors.eval_metrics import EvalMetricsSensor

TRAINED_CHECKPOINT = "{{ ti.xcom_pull(task_ids='train')['checkpoint_path'] }}"
"""Renders to the checkpoint the `train` task returned."""

# Options of a best exporter spec that its comparison task needs too.
_COMPARISON_OPTIONS = ("compare_fn", "comparison", "export_dir_base", "event_file_pattern")

Step = str | Callable[..., BaseOperator]


def run_train(*, model_dir: str, train: str, train_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Task: call the train callable; its result must name the checkpoint it wrote."""
    result = import_callable(train, argument="train")(model_dir=model_dir, **train_kwargs)
    if not isinstance(result, Mapping) or not isinstance(result.get("checkpoint_path"), str):
        raise ValueError(
            f"train callable {train!r} must return a dict with 'checkpoint_path', got {result!r}"
        )
    return dict(result)


def run_evaluate(
    *,
    model_dir: str,
    trained: Mapping[str, Any],
    evaluate: str,
    evaluate_kwargs: Mapping[str, Any],
) -> Any:
    """Task: call the evaluate callable on the checkpoint `train` wrote."""
    evaluator = import_callable(evaluate, argument="evaluate")
    return evaluator(
        model_dir=model_dir, checkpoint_path=trained["checkpoint_path"], **evaluate_kwargs
    )


def retraining_dag(
    *,
    dag_id: str,
    model_dir: str,
    model_definition: str,
    train: Step,
    evaluate: Step | None,
    exporters: Sequence[Mapping[str, Any]],
    schedule: Any = None,
    start_date: datetime | None = None,
    train_kwargs: Mapping[str, Any] | None = None,
    evaluate_kwargs: Mapping[str, Any] | None = None,
    required_metrics: Sequence[str] = ("loss",),
    thresholds: Mapping[str, Mapping[str, float]] | None = None,
    event_file_pattern: str = DEFAULT_EVENT_FILE_PATTERN,
    deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
    eval_timeout: timedelta | float = timedelta(hours=1),
    poke_interval: float = 5.0,
    sensor_retries: int = 2,
    retention: Mapping[str, Any] | None = None,
    gcp_conn_id: str = DEFAULT_CONN_ID,
    validate: bool = True,
    **dag_kwargs: Any,
) -> DAG:
    """A DAG that retrains, evaluates, exports what its strategies accept and cleans up.

    :param model_dir: local path or ``gs://bucket/prefix``: checkpoints, eval events, exports.
    :param model_definition: import string of the model definition used for export (a
        ModelDefinition or an estimator.Estimator).
    :param train: import string of the train callable, or a factory
        ``train(task_id=..., model_dir=...) -> BaseOperator``.
    :param evaluate: import string of the evaluate callable, a factory
        ``evaluate(task_id=..., model_dir=..., checkpoint_path=...) -> BaseOperator``, or
        None when another job writes the eval results.
    :param exporters: exporter specs, e.g. ``[{"strategy": "best", "name": "best",
        "modes": ["train", "eval", "serve"]}, {"strategy": "latest", "name": "latest"}]``.
    :param required_metrics: metrics the eval result must have before the sensor passes it
        on; every metric a best exporter compares (its ``comparison`` metric, ``loss`` for
        the default compare_fn) is added. A list of names, not a string.
    :param thresholds: bounds the eval result must meet before anything is exported, e.g.
        ``{"auc": {"min": 0.7}}`` (a miss fails the run without retry).
    :param event_file_pattern: glob of the eval event files, relative to ``model_dir``.
    :param deferrable: wait for the eval result in the triggerer; default: ``[operators]
        default_deferrable``.
    :param eval_timeout: how long the sensor waits: a timedelta or a number of seconds.
    :param retention: RetentionOperator arguments: ``keep`` rules for every exporter dir and
        optionally ``checkpoints_to_keep`` (the model dir's checkpoints) and
        ``checkpoint_prefix`` (their series), ``dry_run``, ...
        (not ``exporter_dirs``, ``task_id``, ``gcp_conn_id`` or ``trigger_rule``, which the
        template sets).
    :param poke_interval: seconds between two looks of the eval sensor (a number > 0).
    :param sensor_retries: retries of the eval sensor, an integer >= 0 (see
        apache/airflow#71502).
    :param validate: validate each export in a fresh process before it is published
        (docs/validation.md); an exporter spec's own ``validate`` wins.
    :param dag_kwargs: other ``DAG`` arguments (tags, default_args, catchup, ...).
    """
    specs = parse_exporter_specs(exporters, validate=validate)
    validate_model_dir(model_dir)
    validate_exporter_dirs(model_dir, specs)
    validate_import_string(model_definition, argument="model_definition")
    train_arguments = template_arguments(
        {} if train_kwargs is None else train_kwargs, argument="train_kwargs", owned=["model_dir"]
    )
    evaluate_arguments = template_arguments(
        {} if evaluate_kwargs is None else evaluate_kwargs,
        argument="evaluate_kwargs",
        owned=["model_dir", "checkpoint_path"],
    )
    sensor_arguments = eval_sensor_arguments(
        model_dir=model_dir,
        specs=specs,
        required_metrics=required_metrics,
        thresholds=thresholds,
        event_file_pattern=event_file_pattern,
        gcp_conn_id=gcp_conn_id,
        deferrable=deferrable,
        poke_interval=poke_interval,
        eval_timeout=eval_timeout,
        sensor_retries=sensor_retries,
    )
    retention_arguments = (
        None
        if retention is None
        else template_arguments(retention, argument="retention", owned=RETENTION_OWNED)
    )
    with DAG(dag_id=dag_id, schedule=schedule, start_date=start_date, **dag_kwargs) as dag:
        trained = _train_step(train, model_dir, train_arguments)
        waited = EvalMetricsSensor(checkpoint_path=TRAINED_CHECKPOINT, **sensor_arguments)
        if evaluate is None:
            trained >> waited
        else:
            evaluated = _evaluate_step(evaluate, model_dir, evaluate_arguments, trained)
            trained >> evaluated >> waited
        exports: list[BaseOperator] = []
        for spec in specs:
            common = {
                "task_id": spec.task_id,
                "name": spec.name,
                "model_dir": model_dir,
                "model_definition": model_definition,
                "gcp_conn_id": gcp_conn_id,
                **spec.operator_options(),
            }
            if spec.strategy == "best":
                export = spec.operator_class(eval_result=waited.output, **common)
                compare = CompareBranchOperator(
                    task_id=f"compare_{spec.name}",
                    name=spec.name,
                    model_dir=model_dir,
                    eval_result=waited.output,
                    follow_task_ids_if_better=spec.task_id,
                    gcp_conn_id=gcp_conn_id,
                    **{k: v for k, v in spec.options.items() if k in _COMPARISON_OPTIONS},
                )
                waited >> compare >> export
            else:
                export = spec.operator_class(checkpoint_path=TRAINED_CHECKPOINT, **common)
                waited >> export
            exports.append(export)
        if retention_arguments is not None:
            exports >> _retention_step(retention_arguments, model_dir, specs, gcp_conn_id)
    return dag


def _train_step(train: Step, model_dir: str, train_kwargs: dict[str, Any]) -> Any:
    if isinstance(train, str):
        validate_import_string(train, argument="train")
        return task(task_id="train")(run_train)(
            model_dir=model_dir, train=train, train_kwargs=train_kwargs
        )
    if not callable(train):
        raise ValueError(
            f"train must be an import string 'package.module:attribute' or a factory "
            f"returning an operator, got {train!r}"
        )
    return _checked_operator(train(task_id="train", model_dir=model_dir), "train")


def _evaluate_step(
    evaluate: Step, model_dir: str, evaluate_kwargs: dict[str, Any], trained: Any
) -> Any:
    if isinstance(evaluate, str):
        validate_import_string(evaluate, argument="evaluate")
        # The train step's XCom, resolved to its dict when the evaluate task runs.
        trained_output: Any = trained if isinstance(trained, XComArg) else trained.output
        return task(task_id="evaluate")(run_evaluate)(
            model_dir=model_dir,
            trained=trained_output,
            evaluate=evaluate,
            evaluate_kwargs=evaluate_kwargs,
        )
    if not callable(evaluate):
        raise ValueError(
            f"evaluate must be an import string 'package.module:attribute', a factory "
            f"returning an operator, or None, got {evaluate!r}"
        )
    operator = evaluate(task_id="evaluate", model_dir=model_dir, checkpoint_path=TRAINED_CHECKPOINT)
    return _checked_operator(operator, "evaluate")


def _checked_operator(operator: object, task_id: str) -> BaseOperator:
    if not isinstance(operator, BaseOperator) or operator.task_id != task_id:
        raise ValueError(
            f"the {task_id} factory must return an operator with task_id={task_id!r} "
            f"(it receives task_id as an argument), got {operator!r}"
        )
    return operator


def _retention_step(
    arguments: dict[str, Any], model_dir: str, specs: Sequence[ExporterSpec], gcp_conn_id: str
) -> RetentionOperator:
    if "checkpoints_to_keep" in arguments:
        arguments.setdefault("model_dir", model_dir)
    return RetentionOperator(
        task_id="retention",
        exporter_dirs=[exporter_dir_uri(model_dir, spec) for spec in specs],
        gcp_conn_id=gcp_conn_id,
        trigger_rule=TriggerRule.NONE_FAILED,
        **arguments,
    )
