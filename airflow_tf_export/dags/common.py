"""What both DAG templates share: pluggable callables by import string and exporter specs.

A callable is named `"package.module:attribute"` and imported only inside the task that
calls it, so parsing a DAG file never imports TensorFlow or the user's model code.

An exporter spec is a plain dict: `{"strategy": "best", "name": "best", ...}` where the
other keys are arguments of the strategy's export operator, e.g. `exports_to_keep`,
`comparison`, `compare_fn`, `modes` or `max_steps` (final).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow_tf_export.core.names import validate_exporter_name
from airflow_tf_export.operators.export import (
    BestExportOperator,
    FinalExportOperator,
    LatestExportOperator,
    SavedModelExportOperator,
)
from airflow_tf_export.storage.uris import parse_uri

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


def parse_exporter_specs(specs: object) -> tuple[ExporterSpec, ...]:
    """Exporter specs from a non-empty list of dicts; ValueError names the bad one."""
    if isinstance(specs, str | bytes | Mapping) or not isinstance(specs, Sequence) or not specs:
        raise ValueError(
            "exporters must be a non-empty list of dicts such as "
            f"[{{'strategy': 'best', 'name': 'best'}}], got {specs!r}"
        )
    parsed = tuple(_parse_exporter_spec(spec) for spec in specs)
    names = [spec.name for spec in parsed]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"exporter names must be unique, {duplicates} appear more than once")
    return parsed


def _parse_exporter_spec(spec: object) -> ExporterSpec:
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
    options = {k: v for k, v in spec.items() if k not in ("strategy", "name")}
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
    if isinstance(base, str) and base:
        return base
    return f"{parse_uri(model_dir)}/export/{spec.name}"


def eval_sensor_arguments(
    *,
    model_dir: str,
    required_metrics: Sequence[str],
    event_file_pattern: str,
    gcp_conn_id: str,
    deferrable: bool,
    poke_interval: float,
    eval_timeout: timedelta,
    sensor_retries: int,
) -> dict[str, Any]:
    """The `wait_for_eval` sensor arguments both templates share."""
    return {
        "task_id": "wait_for_eval",
        "model_dir": model_dir,
        "required_metrics": list(required_metrics),
        "event_file_pattern": event_file_pattern,
        "gcp_conn_id": gcp_conn_id,
        "deferrable": deferrable,
        "poke_interval": poke_interval,
        "timeout": eval_timeout.total_seconds(),
        # apache/airflow#71502, #72716: the scheduler can fail a deferred sensor whose trigger
        # fired before the defer-exit event was processed; a retry finds the eval result at once.
        "retries": sensor_retries,
        "retry_delay": timedelta(seconds=5),
    }
