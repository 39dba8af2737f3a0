"""Retention: delete old versions of exporter directories and old checkpoints of a model dir.

Keep rules for versions are a JSON-able dict combined with OR (see `parse_keep_rules`); the
newest committed version and the current best are always kept. Each exporter dir is scanned,
planned and cleaned under its exporter lock, the one exports hold while they decide and
publish, so retention never meets a publish in flight. Staging leftovers are deleted only
when provably ours, held by no running export, and older than the grace period. Integer dirs
without metadata that we did not write (e.g. tf.estimator exports) are reported under
"foreign" (and under "foreign_versions" with the global step read from each), `temp-*`
entries we did not create under "not_ours", untrustworthy versions under "invalid"; none of
them is ever deleted. Checkpoints of the model dir's own series
(those its `checkpoint` state file lists, or `checkpoint_prefix`) keep the
newest N plus every protected one (the state file's latest, unevaluated ones, and optionally
those a version was exported from); every other entry of the model dir is kept and reported,
and the state file is pruned to list what remains. `dry_run=True` only reports. The XCom holds
every plan with the rule that decided each keep or delete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_tf_export.core.checkpoint_retention import CheckpointPlan, plan_checkpoint_retention
from airflow_tf_export.core.comparison import best_version
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.core.retention import (
    DEFAULT_STAGING_GRACE_SECONDS,
    RetentionPlan,
    check_staging_grace,
    plan_retention,
)
from airflow_tf_export.core.strategies import DEFAULT_EVENT_FILE_PATTERN
from airflow_tf_export.hooks.storage import StorageHook
from airflow_tf_export.operators._args import best_comparison, parse_keep_rules
from airflow_tf_export.operators.export import (
    DEFAULT_CONN_ID,
    check_event_file_pattern,
    failing_on_bad_input,
)
from airflow_tf_export.storage.base import Storage
from airflow_tf_export.storage.checkpoint_cleanup import (
    StateFileChange,
    apply_checkpoint_plan,
    plan_state_file,
    read_model_dir,
)
from airflow_tf_export.storage.exporter_dir import ExporterDir, ExporterDirState

if TYPE_CHECKING:
    from airflow.sdk import Context


class RetentionOperator(BaseOperator):
    """Apply keep rules to exporter directories and to a model dir's checkpoints.

    :param exporter_dirs: exporter directories (`<model_dir>/export/<name>`), local or
        `gs://`. (templated)
    :param keep: keep rules for their versions, e.g. `{"newest": 5, "best": {"n": 2,
        "metric": "auc", "higher_is_better": True}, "every_steps": 1000, "every_hours": 24,
        "pinned": [1700000000]}`. The "best" rule's comparison also decides the protected
        current best (loss, lower is better, when there is no "best" rule).
    :param model_dir: model directory whose checkpoints to thin out. (templated)
    :param checkpoints_to_keep: how many newest checkpoints to keep (with `model_dir`).
    :param checkpoint_prefix: the series whose checkpoints may be deleted, e.g. `"ckpt"` for
        `ckpt-<step>` (with `model_dir`); default: the series the model dir's `checkpoint`
        state file lists (`model.ckpt` for an Estimator). Without either nothing is deleted.
        Files of other series, Keras weights files and everything else are kept and reported.
    :param keep_exported_checkpoints: also keep checkpoints a version of `exporter_dirs`
        was exported from.
    :param event_file_pattern: eval event files, relative to `model_dir`: checkpoints newer
        than the newest evaluated step are kept. (templated)
    :param staging_grace_seconds: age after which our abandoned staging entries are deleted
        (a number >= 0; every value is safe, 0 included: retention holds the exporter lock
        and keeps the staging dirs running exports hold, so the grace period only delays
        the cleanup of leftovers, e.g. of exports of an earlier release that may still run).
    :param dry_run: only report the plans.
    :param gcp_conn_id: Airflow Google Cloud connection for `gs://` URIs. (templated)
    """

    template_fields: Sequence[str] = (
        "exporter_dirs",
        "model_dir",
        "event_file_pattern",
        "gcp_conn_id",
    )
    ui_color = "#ffc9c9"

    def __init__(
        self,
        *,
        exporter_dirs: Sequence[str] = (),
        keep: Mapping[str, Any] | None = None,
        model_dir: str | None = None,
        checkpoints_to_keep: int | None = None,
        checkpoint_prefix: str | None = None,
        keep_exported_checkpoints: bool = True,
        event_file_pattern: str = DEFAULT_EVENT_FILE_PATTERN,
        staging_grace_seconds: float = DEFAULT_STAGING_GRACE_SECONDS,
        dry_run: bool = False,
        gcp_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.exporter_dirs = exporter_dirs
        self.keep = keep
        self.model_dir = model_dir
        self.checkpoints_to_keep = checkpoints_to_keep
        self.checkpoint_prefix = checkpoint_prefix
        self.keep_exported_checkpoints = keep_exported_checkpoints
        self.event_file_pattern = event_file_pattern
        self.staging_grace_seconds = check_staging_grace(staging_grace_seconds)
        # Stored under another name: BaseOperator.dry_run() is a method.
        self.report_only = dry_run
        self.gcp_conn_id = gcp_conn_id
        if isinstance(exporter_dirs, str):
            raise ValueError(
                f"exporter_dirs must be a list of URIs, got the string {exporter_dirs!r}"
            )
        if (model_dir is None) != (checkpoints_to_keep is None):
            raise ValueError(
                "give model_dir and checkpoints_to_keep together (or neither), got "
                f"model_dir={model_dir!r}, checkpoints_to_keep={checkpoints_to_keep!r}"
            )
        if checkpoint_prefix is not None and model_dir is None:
            raise ValueError(
                f"checkpoint_prefix {checkpoint_prefix!r} names checkpoints of a model dir: "
                "give model_dir and checkpoints_to_keep too"
            )
        if checkpoint_prefix is not None and not _is_series_name(checkpoint_prefix):
            raise ValueError(
                "checkpoint_prefix must be the name of the checkpoints without -<step> "
                f"(e.g. 'ckpt' for ckpt-<step>, 'model.ckpt'), got {checkpoint_prefix!r}"
            )
        if not exporter_dirs and model_dir is None:
            raise ValueError("nothing to retain: give exporter_dirs and keep, or model_dir")
        if exporter_dirs and keep is None:
            raise ValueError(f"exporter_dirs {list(exporter_dirs)!r} need keep rules (keep=...)")
        self.keep_rules = () if keep is None else parse_keep_rules(keep)
        self.best_comparison = best_comparison(keep or {})
        if checkpoints_to_keep is not None and (
            isinstance(checkpoints_to_keep, bool)
            or not isinstance(checkpoints_to_keep, int)
            or checkpoints_to_keep <= 0
        ):
            raise ValueError(
                f"checkpoints_to_keep must be a positive integer, got {checkpoints_to_keep!r}"
            )
        for label, flag in (
            ("dry_run", dry_run),
            ("keep_exported_checkpoints", keep_exported_checkpoints),
        ):
            if not isinstance(flag, bool):
                raise ValueError(f"{label} must be True or False, got {flag!r}")

    def execute(self, context: Context) -> dict[str, Any]:
        """Plan (and unless `dry_run`, apply) every retention; return the plans."""
        hook = StorageHook(gcp_conn_id=self.gcp_conn_id)
        exporters: list[dict[str, Any]] = []
        exported: list[ExportMetadata] = []
        with failing_on_bad_input("retention"):
            check_event_file_pattern(self.event_file_pattern)
            if isinstance(self.exporter_dirs, str):
                raise ValueError(
                    f"exporter_dirs rendered to the string {self.exporter_dirs!r}, not a list"
                )
            # Every URI is checked against the allowed roots before anything is deleted.
            storages = [(uri, hook.storage_for(uri)) for uri in self.exporter_dirs]
            model_storage = None if self.model_dir is None else hook.storage_for(self.model_dir)
            for uri, storage in storages:
                exporter = ExporterDir(storage, uri)
                state, plan = exporter.retain(self._exporter_plan, dry_run=self.report_only)
                self.log.info("retention of %s%s:\n%s", exporter.uri, self._mode(), plan.explain())
                exporters.append(_exporter_dict(exporter, state, plan))
                kept = set(plan.keep_versions)
                exported.extend(m for m in state.committed if m.version in kept)
            checkpoints = None
            if model_storage is not None:
                checkpoints = self._checkpoints(model_storage, exported)
        return {"dry_run": self.report_only, "exporters": exporters, "checkpoints": checkpoints}

    def _mode(self) -> str:
        return " (dry run: nothing deleted)" if self.report_only else ""

    def _exporter_plan(self, state: ExporterDirState) -> RetentionPlan:
        best = best_version(state.committed, self.best_comparison)
        return plan_retention(
            state.committed,
            self.keep_rules,
            best=None if best is None else best.version,
            staging=state.staging,
            staging_grace_seconds=self.staging_grace_seconds,
            invalid=state.invalid,
        )

    def _checkpoints(self, storage: Storage, exported: Sequence[ExportMetadata]) -> dict[str, Any]:
        assert self.model_dir is not None and self.checkpoints_to_keep is not None
        contents = read_model_dir(storage, self.model_dir)
        from airflow_tf_export.events.eval_dir import EvalDirReader

        reader = EvalDirReader(storage, self.model_dir, self.event_file_pattern)
        reader.refresh()
        steps = reader.steps()
        plan = plan_checkpoint_retention(
            contents.entries,
            keep_newest=self.checkpoints_to_keep,
            state=None if contents.state_file is None else contents.state_file.state,
            checkpoint_prefix=self.checkpoint_prefix,
            newest_evaluated_step=steps[-1] if steps else None,
            exported_prefixes=[m.checkpoint_path for m in exported],
            keep_exported=self.keep_exported_checkpoints,
        )
        change = plan_state_file(contents, plan)
        self.log.info(
            "checkpoint retention of %s%s:\n%s", self.model_dir, self._mode(), plan.explain()
        )
        if not self.report_only:
            change = apply_checkpoint_plan(storage, contents, plan, change)
        self.log.info("checkpoint state file: %s", change.explain())
        return _checkpoint_dict(storage, self.model_dir, plan, change)


def _is_series_name(value: object) -> bool:
    """A checkpoint name without its step: one non-empty path segment."""
    return (
        isinstance(value, str)
        and bool(value.strip())
        and "/" not in value
        and value not in (".", "..")
    )


def _exporter_dict(
    exporter: ExporterDir, state: ExporterDirState, plan: RetentionPlan
) -> dict[str, Any]:
    return {
        "uri": exporter.uri,
        "keep": [
            {"version": i.version, "rule": i.rule, "reason": i.reason} for i in plan.items if i.keep
        ],
        "delete": [{"version": i.version, "reason": i.reason} for i in plan.items if not i.keep],
        "staging_delete": list(plan.uncommitted_delete),
        "staging_keep": list(plan.staging_keep),
        "invalid": [{"version": v, "error": e} for v, e in plan.invalid],
        "foreign": list(plan.foreign_versions),
        "not_ours": list(plan.not_ours),
        "foreign_versions": [f.to_dict() for f in state.foreign_versions],
        "explain": plan.explain(),
    }


def _checkpoint_dict(
    storage: Storage, model_dir: str, plan: CheckpointPlan, change: StateFileChange
) -> dict[str, Any]:
    return {
        "model_dir": model_dir,
        "series": list(plan.series),
        "series_source": plan.series_source,
        "keep": [
            {
                "prefix": storage.join(model_dir, i.prefix),
                "step": i.step,
                "rule": i.rule,
                "reason": i.reason,
                "files": list(i.files),
            }
            for i in plan.items
            if i.keep
        ],
        "delete": [
            {
                "prefix": storage.join(model_dir, i.prefix),
                "step": i.step,
                "reason": i.reason,
                "files": list(i.files),
            }
            for i in plan.items
            if not i.keep
        ],
        "other": [{"name": o.name, "reason": f"kept: {o.reason}"} for o in plan.others],
        "state_file": {
            "uri": change.uri,
            "remove": list(change.removed),
            "outcome": change.outcome,
            "explain": change.explain(),
        },
        "explain": f"{plan.explain()}\n{change.explain()}",
    }
