"""What an exporter dir holds and what retention would decide: versions, plans, tables.

Pure reads: nothing here deletes or writes. The plans are the ones RetentionOperator and the
export strategies compute (`plan_retention` under the same keep rules, with the same
protected current best), so a dry run here shows what a retention task would do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_tf_export.core.comparison import best_version
from airflow_tf_export.core.retention import RetentionPlan, plan_retention
from airflow_tf_export.operators._args import best_comparison, parse_keep_rules
from airflow_tf_export.storage.base import Storage, StorageNotFoundError
from airflow_tf_export.storage.exporter_dir import ExporterDir, ExporterDirState

StepMetrics = Mapping[int, Mapping[str, float]]
"""Global step -> the metrics its evaluation recorded (read from the eval event files)."""


def exporter_dirs_of(storage: Storage, model_dir: str) -> list[str]:
    """The exporter dirs `<model_dir>/export/<name>`, sorted by name (none: empty list)."""
    export_dir = storage.join(model_dir, "export")
    try:
        entries = storage.list_dir(export_dir)
    except StorageNotFoundError:
        return []
    return sorted(storage.join(export_dir, e.name) for e in entries if e.is_dir)


def evaluated_metrics(storage: Storage, model_dir: str, event_file_pattern: str) -> StepMetrics:
    """The metrics of every evaluated step in the model dir's eval event files."""
    from airflow_tf_export.events.eval_dir import EvalDirReader

    reader = EvalDirReader(storage, model_dir, event_file_pattern)
    reader.refresh()
    return {result.step: result.metrics for result in reader.results()}


def exporter_plan(
    exporter: ExporterDir, keep: Mapping[str, Any]
) -> tuple[ExporterDirState, RetentionPlan]:
    """The exporter dir's state and the retention plan of the keep rules `keep` (ValueError
    names bad rules)."""
    rules = parse_keep_rules(keep)
    state = exporter.scan()
    best = best_version(state.committed, best_comparison(keep))
    plan = plan_retention(
        state.committed, rules, best=None if best is None else best.version, staging=state.staging
    )
    return state, plan


def exporter_listing(
    exporter: ExporterDir, keep: Mapping[str, Any], evaluated: StepMetrics
) -> dict[str, Any]:
    """Every committed version with its step, metrics (its metadata's eval result, else the
    evaluation of its step in `evaluated`) and retention verdict; foreign, invalid and
    staging entries; JSON-able."""
    state, plan = exporter_plan(exporter, keep)
    decisions = {item.version: item for item in plan.items}
    versions = []
    for meta in state.committed:
        item = decisions[meta.version]
        metrics = evaluated.get(meta.global_step, {})
        if meta.eval_result is not None:
            metrics = meta.eval_result.metrics
        versions.append(
            {
                "version": meta.version,
                "uri": exporter.version_uri(meta.version),
                "global_step": meta.global_step,
                "checkpoint_path": meta.checkpoint_path,
                "strategy": meta.strategy,
                "created_at": meta.created_at,
                "metrics": dict(metrics),
                "retention": "keep" if item.keep else "delete",
                "why": item.rule if item.keep else item.reason,
                "validation": None if meta.validation is None else meta.validation.to_dict(),
            }
        )
    return {
        "uri": exporter.uri,
        "versions": versions,
        "foreign_versions": [f.to_dict() for f in state.foreign_versions],
        "invalid": [{"version": v, "error": e} for v, e in state.invalid],
        "staging_delete": list(plan.uncommitted_delete),
        "staging_keep": list(plan.staging_keep),
        "explain": plan.explain(),
    }


def listing_table(listing: Mapping[str, Any]) -> str:
    """One exporter dir's listing as a text table (a dry run: "delete" means "would be
    deleted by a retention task with these rules")."""
    versions = listing["versions"]
    metrics = sorted({name for v in versions for name in v["metrics"]})
    header = ("version", "step", *metrics, "validated", "retention", "why")
    rows = [
        (
            str(v["version"]),
            str(v["global_step"]),
            *(f"{v['metrics'][m]:.4f}" if m in v["metrics"] else "-" for m in metrics),
            validation_cell(v["validation"]),
            "keep" if v["retention"] == "keep" else "would delete",
            v["why"],
        )
        for v in versions
    ]
    lines = [f"{listing['uri']}  ({len(rows)} committed versions)"]
    lines += text_table(header, rows) if rows else ["  (no committed version)"]
    lines += [f"  invalid version {i['version']}: {i['error']}" for i in listing["invalid"]]
    lines += [
        f"  foreign version {f['version']} (step {f['global_step']}): not written by "
        "airflow-tf-export, always kept"
        for f in listing["foreign_versions"]
    ]
    lines += [f"  staging {name}: abandoned, delete" for name in listing["staging_delete"]]
    lines += [f"  staging {name}: recent, keep" for name in listing["staging_keep"]]
    return "\n".join(lines)


def validation_cell(validation: Mapping[str, Any] | None) -> str:
    """`<signatures> sig/<examples> ex`, with `+warmup` when TF Serving's warmup file was
    written, or `-` for a version published without validation."""
    if validation is None:
        return "-"
    cell = f"{len(validation['signatures'])} sig/{validation['examples']} ex"
    return cell + ("+warmup" if validation["warmup_requests"] else "")


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns under a dashed rule, each line indented by two spaces."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
