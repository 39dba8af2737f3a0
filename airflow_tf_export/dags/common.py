"""What both DAG templates share: pluggable callables by import string and exporter specs.

A callable is named `"package.module:attribute"` and imported only inside the task that
calls it, so parsing a DAG file never imports TensorFlow or the user's model code.

An exporter spec is a plain dict: `{"strategy": "best", "name": "best", ...}` where the
other keys are arguments of the strategy's export operator, e.g. `exports_to_keep`,
`comparison`, `compare_fn`, `modes` or `max_steps` (final).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable
from airflow.sdk.exceptions import AirflowTimetableInvalid

from airflow_tf_export.core.comparison import MetricComparison, loss_smaller
from airflow_tf_export.core.eval_wait import parse_metric_names, parse_thresholds
from airflow_tf_export.core.names import validate_exporter_name
from airflow_tf_export.events.eval_dir import validate_event_file_pattern
from airflow_tf_export.operators._args import has_template
from airflow_tf_export.operators.export import (
    BestExportOperator,
    FinalExportOperator,
    LatestExportOperator,
    SavedModelExportOperator,
    best_strategy,
)
from airflow_tf_export.storage.uris import exporter_uri, parse_uri

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_IMPORT_STRING = re.compile(rf"^({_DOTTED}):({_DOTTED})$")

EXPORT_OPERATORS: dict[str, type[SavedModelExportOperator]] = {
    "final": FinalExportOperator,
    "latest": LatestExportOperator,
    "best": BestExportOperator,
}
EXPORT_RETRIES = 2
EXPORT_RETRY_DELAY = timedelta(seconds=10)
# Keys the templates set themselves; a spec giving them would be silently overridden.
_TEMPLATE_OWNED = frozenset(
    {"task_id", "model_dir", "model_definition", "checkpoint_path", "eval_result", "gcp_conn_id"}
)
# RetentionOperator arguments the templates set themselves.
RETENTION_OWNED = ("exporter_dirs", "task_id", "gcp_conn_id", "trigger_rule")


def validate_import_string(reference: object, *, argument: str) -> str:
    """`reference` when it is `"package.module:attribute"`; ValueError naming it otherwise."""
    if not isinstance(reference, str) or _IMPORT_STRING.match(reference) is None:
        raise ValueError(
            f"{argument} must be an import string 'package.module:attribute' naming a "
            f"callable, got {reference!r}"
        )
    return reference


def import_callable(reference: str, *, argument: str) -> Callable[..., Any]:
    """The callable an import string names, imported now (inside a task)."""
    module_name, attribute_path = validate_import_string(reference, argument=argument).split(":")
    target: object = importlib.import_module(module_name)
    for part in attribute_path.split("."):
        if not hasattr(target, part):
            raise ValueError(
                f"{argument} {reference!r}: module {module_name!r} has no attribute "
                f"{attribute_path!r}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{argument} {reference!r} is a {type(target).__name__}, not a callable")
    return target


@dataclass(frozen=True)
class ExporterSpec:
    """One configured exporter: its strategy, its name and its operator's other arguments."""

    strategy: str
    name: str
    options: Mapping[str, Any]

    @property
    def operator_class(self) -> type[SavedModelExportOperator]:
        return EXPORT_OPERATORS[self.strategy]

    @property
    def task_id(self) -> str:
        return f"export_{self.name}"

    def operator_options(self) -> dict[str, Any]:
        """The spec's operator arguments, with retries unless the spec sets its own.

        A retry is safe (it returns the version an earlier try published) and covers a race
        in Airflow 3.3 seen with PostgreSQL: two tasks announcing the same new asset through
        an AssetAlias at once; one insert hits the unique index on the asset and that task
        is set to failed although its export succeeded.
        """
        return {"retries": EXPORT_RETRIES, "retry_delay": EXPORT_RETRY_DELAY, **self.options}


def parse_exporter_specs(specs: object, *, validate: object = True) -> tuple[ExporterSpec, ...]:
    """Exporter specs from a non-empty list of dicts; ValueError names the bad one.
    `validate` (the template's) is each exporter's `validate` unless its spec sets one."""
    if not isinstance(validate, bool):
        raise ValueError(f"validate must be True or False, got {validate!r}")
    if isinstance(specs, str | bytes | Mapping) or not isinstance(specs, Sequence) or not specs:
        raise ValueError(
            "exporters must be a non-empty list of dicts such as "
            f"[{{'strategy': 'best', 'name': 'best'}}], got {specs!r}"
        )
    parsed = tuple(_parse_exporter_spec(spec, validate) for spec in specs)
    names = [spec.name for spec in parsed]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"exporter names must be unique, {duplicates} appear more than once")
    return parsed


def _parse_exporter_spec(spec: object, validate: bool) -> ExporterSpec:
    if not isinstance(spec, Mapping):
        raise ValueError(f"an exporter spec must be a dict, got {spec!r}")
    strategy = spec.get("strategy")
    if strategy not in EXPORT_OPERATORS:
        raise ValueError(
            f"exporter spec {dict(spec)!r} has strategy {strategy!r}; "
            f"valid strategies: {sorted(EXPORT_OPERATORS)}"
        )
    name = validate_exporter_name(spec.get("name", strategy))
    owned = sorted(_TEMPLATE_OWNED & set(spec))
    if owned:
        raise ValueError(
            f"exporter spec {dict(spec)!r} sets {owned}, which the DAG template sets itself"
        )
    if "retries" in spec:
        non_negative_int(spec["retries"], argument=f"retries of exporter {name!r}")
    options = {"validate": validate}
    options.update((k, v) for k, v in spec.items() if k not in ("strategy", "name"))
    return ExporterSpec(strategy=str(strategy), name=name, options=options)


def validate_model_dir(model_dir: object) -> str:
    """`model_dir` when it is a storage URI (checked while parsing, no I/O); ValueError else."""
    if not isinstance(model_dir, str):
        raise ValueError(f"model_dir must be a string URI, got {model_dir!r}")
    parse_uri(model_dir)
    return model_dir


def exporter_dir_uri(model_dir: str, spec: ExporterSpec) -> str:
    """Where the exporter publishes: its `export_dir_base`, else `<model_dir>/export/<name>`
    (the export operators' default), computed without touching storage."""
    base = spec.options.get("export_dir_base")
    return exporter_uri(model_dir, spec.name, base if isinstance(base, str) and base else None)


def validate_exporter_dirs(model_dir: str, specs: Iterable[ExporterSpec]) -> None:
    """ValueError naming an exporter directory URI that cannot be right, checked while
    parsing (a templated `export_dir_base` is checked when its task runs)."""
    for spec in specs:
        if not has_template(spec.options.get("export_dir_base")):
            exporter_dir_uri(model_dir, spec)


def template_arguments(
    arguments: object, *, argument: str, owned: Iterable[str] = ()
) -> dict[str, Any]:
    """`arguments` as a dict; ValueError unless it is a mapping without the `owned` keys,
    which the template sets itself (giving them would clash when the task is built or run)."""
    if not isinstance(arguments, Mapping):
        raise ValueError(f"{argument} must be a dict, got {arguments!r}")
    clashing = sorted(set(owned) & set(arguments))
    if clashing:
        raise ValueError(
            f"{argument} {dict(arguments)!r} sets {clashing}, which the DAG template sets "
            "itself; remove them"
        )
    return dict(arguments)


def positive_int(value: object, *, argument: str) -> int:
    """`value` when it is an int >= 1; ValueError naming it otherwise."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{argument} must be a positive integer, got {value!r}")
    return value


def non_negative_int(value: object, *, argument: str) -> int:
    """`value` when it is an int >= 0 (a count such as retries); ValueError naming it."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{argument} must be an integer >= 0, got {value!r}")
    return value


def positive_seconds(value: object, *, argument: str) -> float:
    """`value` when it is a finite number of seconds > 0; ValueError naming it otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"{argument} must be a positive number of seconds, got {value!r}")
    return float(value)


def data_interval_timetable(
    schedule: object, timezone: object
) -> CronDataIntervalTimetable | DeltaDataIntervalTimetable:
    """The data-interval timetable of a cron expression or preset (in `timezone`, an IANA
    name) or of a timedelta. Checked now: a bad one would fail the parse of the DAG folder."""
    valid_timezone = isinstance(timezone, pendulum.Timezone | pendulum.FixedTimezone)
    if isinstance(timezone, str):
        try:
            pendulum.timezone(timezone)
            valid_timezone = True
        except ValueError:
            pass
    if not valid_timezone:
        raise ValueError(
            f"timezone must be an IANA time zone name such as 'UTC' or 'Europe/Paris', "
            f"got {timezone!r}"
        )
    timetable: CronDataIntervalTimetable | DeltaDataIntervalTimetable | None = None
    if isinstance(schedule, timedelta):
        timetable = DeltaDataIntervalTimetable(schedule)
    elif isinstance(schedule, str):
        timetable = CronDataIntervalTimetable(schedule, timezone=timezone)  # type: ignore[arg-type]
    reason = ""
    try:
        if timetable is not None:
            timetable.validate()
            return timetable
    except AirflowTimetableInvalid as error:
        reason = f" ({error})"
    raise ValueError(
        "schedule must be a cron expression or preset such as '@daily' or '0 */6 * * *', "
        f"or a positive timedelta, got {schedule!r}{reason}"
    )


def comparison_metrics(specs: Iterable[ExporterSpec]) -> list[str]:
    """The metrics the best exporters compare: each declared comparison's metric, and
    `loss` for the default compare_fn (a custom compare_fn's metrics are not known here:
    list them in `required_metrics`)."""
    metrics: list[str] = []
    for spec in specs:
        if spec.strategy != "best":
            continue
        strategy = best_strategy(
            spec.name,
            spec.options.get("compare_fn", loss_smaller),
            spec.options.get("comparison"),
            None,
        )
        comparator = strategy.comparator
        if isinstance(comparator, MetricComparison) and comparator.metric not in metrics:
            metrics.append(comparator.metric)
    return metrics


def eval_timeout_seconds(eval_timeout: object) -> float:
    """`eval_timeout` (a timedelta or a number of seconds) in seconds; ValueError unless
    positive and finite."""
    seconds = None
    if isinstance(eval_timeout, timedelta):
        seconds = eval_timeout.total_seconds()
    elif isinstance(eval_timeout, int | float) and not isinstance(eval_timeout, bool):
        seconds = float(eval_timeout)
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(
            "eval_timeout must be a positive number of seconds or a timedelta, "
            f"got {eval_timeout!r}"
        )
    return seconds


def eval_sensor_arguments(
    *,
    model_dir: str,
    specs: Iterable[ExporterSpec],
    required_metrics: object,
    thresholds: object,
    event_file_pattern: object,
    gcp_conn_id: str,
    deferrable: object,
    poke_interval: object,
    eval_timeout: object,
    sensor_retries: object,
) -> dict[str, Any]:
    """The `wait_for_eval` sensor arguments both templates share, checked now with the
    sensor's own parsers (ValueError names a bad one).

    The required metrics are the given ones plus every metric a best exporter compares: TF2
    writes each scalar as its own event, so without it the sensor could pass a half-written
    result that the comparison then rejects.
    """
    validate_event_file_pattern(event_file_pattern)
    required = parse_metric_names(required_metrics)
    if not has_template(thresholds):
        parse_thresholds(thresholds)
    if not isinstance(deferrable, bool):
        raise ValueError(f"deferrable must be True or False, got {deferrable!r}")
    return {
        "task_id": "wait_for_eval",
        "model_dir": model_dir,
        "required_metrics": list(dict.fromkeys([*required, *comparison_metrics(specs)])),
        "thresholds": thresholds,
        "event_file_pattern": event_file_pattern,
        "gcp_conn_id": gcp_conn_id,
        "deferrable": deferrable,
        "poke_interval": positive_seconds(poke_interval, argument="poke_interval"),
        "timeout": eval_timeout_seconds(eval_timeout),
        # apache/airflow#71502, #72716: the scheduler can fail a deferred sensor whose trigger
        # fired before the defer-exit event was processed; a retry finds the eval result at once.
        "retries": non_negative_int(sensor_retries, argument="sensor_retries"),
        "retry_delay": timedelta(seconds=5),
    }
