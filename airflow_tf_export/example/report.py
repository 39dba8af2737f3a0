"""Print what each exporter of a model dir holds and what retention decides for it.

    python -m airflow_tf_export.example.report MODEL_DIR --keep '{"newest": 2, "best": 1}'

One table per exporter directory (`MODEL_DIR/export/<name>`): every committed version with
its global step and metrics, and the retention dry run's decision (keep or delete) with the
rule or reason behind it. Nothing is deleted.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_tf_export.core.comparison import best_version
from airflow_tf_export.core.retention import plan_retention
from airflow_tf_export.events.eval_dir import EvalDirReader
from airflow_tf_export.operators._args import best_comparison, parse_keep_rules
from airflow_tf_export.storage import StorageNotFoundError, storage_for
from airflow_tf_export.storage.exporter_dir import ExporterDir

METRICS = ("loss", "accuracy", "auc")


def exporter_report(
    exporter_uri: str, keep: Mapping[str, Any], evaluated: Mapping[int, Mapping[str, float]]
) -> str:
    """The table of one exporter directory under the keep rules `keep`; metrics come from
    each version's metadata, else from `evaluated` (step -> metrics of the eval events)."""
    state = ExporterDir(storage_for(exporter_uri), exporter_uri).scan()
    best = best_version(state.committed, best_comparison(keep))
    plan = plan_retention(
        state.committed,
        parse_keep_rules(keep),
        best=None if best is None else best.version,
        staging=state.staging,
    )
    decisions = {item.version: item for item in plan.items}
    header = ("version", "step", *METRICS, "retention", "why")
    rows = []
    for meta in state.committed:
        metrics = evaluated.get(meta.global_step, {})
        if meta.eval_result is not None:
            metrics = meta.eval_result.metrics
        item = decisions[meta.version]
        rows.append(
            (
                str(meta.version),
                str(meta.global_step),
                *(f"{metrics[m]:.4f}" if m in metrics else "-" for m in METRICS),
                "kept" if item.keep else "deleted",
                item.rule if item.keep else item.reason,
            )
        )
    lines = [f"{exporter_uri}  ({len(rows)} committed versions)"]
    lines += _table(header, rows) if rows else ["  (no committed version)"]
    lines += [f"  invalid version {v}: {error}" for v, error in state.invalid]
    lines += [f"  foreign version {v}: no export metadata, not ours, kept" for v in state.foreign]
    return "\n".join(lines)


def model_report(model_dir: str, keep: Mapping[str, Any]) -> str:
    """The tables of every exporter directory of `model_dir`."""
    storage = storage_for(model_dir)
    export_dir = storage.join(model_dir, "export")
    try:
        names = [e.name for e in storage.list_dir(export_dir) if e.is_dir]
    except StorageNotFoundError:
        return f"{export_dir}: nothing exported yet"
    rules = json.dumps(dict(keep), sort_keys=True)
    reader = EvalDirReader(storage, model_dir)
    reader.refresh()
    evaluated = {result.step: result.metrics for result in reader.results()}
    tables = [exporter_report(storage.join(export_dir, n), keep, evaluated) for n in names]
    return f"Retention dry run with keep={rules}\n\n" + "\n\n".join(tables)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="local path or gs://bucket/prefix")
    parser.add_argument(
        "--keep",
        default='{"newest": 5}',
        help='retention keep rules as JSON, e.g. \'{"newest": 2, "best": 1}\'',
    )
    args = parser.parse_args(argv)
    print(model_report(args.model_dir, json.loads(args.keep)))


if __name__ == "__main__":
    main()
