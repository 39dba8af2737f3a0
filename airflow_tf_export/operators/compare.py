"""Compare a candidate eval result with the best version of a best exporter's directory.

`CompareOperator` returns the decision the BestExportOperator would take (same strategy,
same checkpoint resolution, the committed versions and the comparable foreign ones, e.g.
tf.estimator's own exports) with its reason, as a plain XCom. `CompareBranchOperator` also
branches on it: it follows the export task ids when the candidate is better and the skip
task ids otherwise, so a DAG can gate a deployment path on the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.branch import BranchMixIn
from airflow.sdk import BaseOperator
from airflow.sdk.bases.xcom import BaseXCom

from airflow_tf_export.core.comparison import best_version, loss_smaller
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.strategies import (
    DEFAULT_EVENT_FILE_PATTERN,
    BestStrategy,
    Candidate,
)
from airflow_tf_export.hooks.storage import StorageHook
from airflow_tf_export.operators._args import parse_eval_result
from airflow_tf_export.operators.export import (
    DEFAULT_CONN_ID,
    EvalEvents,
    best_strategy,
    check_event_file_pattern,
    failing_on_bad_input,
)
from airflow_tf_export.storage.checkpoints import resolve_checkpoint
from airflow_tf_export.storage.export_flow import ForeignAdopter
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.uris import exporter_uri

if TYPE_CHECKING:
    from airflow.sdk import Context


class CompareOperator(BaseOperator):
    """Whether a candidate beats the best version of exporter `name`: the best committed
    version and the best comparable foreign version (e.g. tf.estimator's own exports; one
    whose global step is unreadable or has no comparable eval result is ignored and named in
    the reason, see docs/foreign-versions.md).

    Arguments mean what they mean for BestExportOperator. The XCom is a dict: `better`,
    `reason`, `existing_version` (the checkpoint is already that version), `best_version` and
    `best_eval_result` (of the committed versions), the `candidate` (checkpoint, step, eval
    result), the `foreign_versions` considered, `comparison` and the exporter `uri`.

    :param model_dir: local path or `gs://bucket/prefix` with the checkpoints. (templated)
    :param name: the best exporter's name.
    :param export_dir_base: the exporter dir; default `<model_dir>/export/<name>`. (templated)
    :param eval_result: the candidate's eval result (the EvalMetricsSensor's XCom); when empty,
        read from the event files for the checkpoint's step. (templated)
    :param checkpoint_path: the candidate checkpoint; default: the checkpoint the eval result
        records (resolved in `model_dir`: as written inside it, else by name; see
        docs/model-dir.md), the kept checkpoint of its step, else the latest. (templated)
    :param compare_fn: `compare_fn(best_eval_result, current_eval_result) -> bool`.
    :param comparison: declared comparison instead, e.g. `{"metric": "auc",
        "higher_is_better": True}`.
    :param event_file_pattern: glob, relative to `model_dir`, of the eval event files.
        (templated)
    :param gcp_conn_id: Airflow Google Cloud connection for `gs://` URIs. (templated)
    """

    template_fields: Sequence[str] = (
        "model_dir",
        "export_dir_base",
        "eval_result",
        "checkpoint_path",
        "event_file_pattern",
        "gcp_conn_id",
    )
    ui_color = "#d0bfff"

    def __init__(
        self,
        *,
        model_dir: str,
        name: str = "best_exporter",
        export_dir_base: str | None = None,
        eval_result: EvalResult | Mapping[str, Any] | str | None = None,
        checkpoint_path: str | None = None,
        compare_fn: Callable[..., Any] | None = loss_smaller,
        comparison: Mapping[str, Any] | None = None,
        event_file_pattern: str = DEFAULT_EVENT_FILE_PATTERN,
        gcp_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_dir = model_dir
        self.name = name
        self.export_dir_base = export_dir_base
        self.eval_result = eval_result
        self.checkpoint_path = checkpoint_path
        self.compare_fn = compare_fn
        self.comparison = comparison
        self.event_file_pattern = event_file_pattern
        self.gcp_conn_id = gcp_conn_id
        self.strategy: BestStrategy = best_strategy(name, compare_fn, comparison, None)

    def execute(self, context: Context) -> dict[str, Any]:
        """Compare and return the decision (see the class docstring)."""
        return self.compare()

    def compare(self) -> dict[str, Any]:
        """The decision dict."""
        hook = StorageHook(gcp_conn_id=self.gcp_conn_id)
        storage = hook.storage_for(self.model_dir)
        with failing_on_bad_input(f"compare for best exporter {self.name!r}"):
            base = exporter_uri(self.model_dir, self.name, self.export_dir_base)
            exporter = ExporterDir(hook.storage_for(base), base)
            check_event_file_pattern(self.event_file_pattern)
            given = parse_eval_result(self.eval_result)
            checkpoint = resolve_checkpoint(
                storage,
                self.model_dir,
                self.checkpoint_path,
                recorded_path=given.checkpoint_path if given else None,
                step=given.step if given else None,
            )
            events = EvalEvents(storage, self.model_dir, self.event_file_pattern)
            result = given or events.result(checkpoint.step)
            candidate = Candidate(checkpoint.path, checkpoint.step, result)
            state = exporter.scan()
            committed = state.committed
            foreign = ForeignAdopter(events.results)(state.foreign_versions)
            decision = self.strategy.decide(committed, candidate, foreign=foreign)
        best = best_version(committed, self.strategy.comparator)
        self.log.info("compare for %r: %s", self.name, decision.reason)
        return {
            "better": decision.export,
            "reason": decision.reason,
            "existing_version": decision.existing_version,
            "best_version": None if best is None else best.version,
            "best_eval_result": None
            if best is None or best.eval_result is None
            else best.eval_result.to_dict(),
            "candidate": {
                "checkpoint_path": candidate.checkpoint_path,
                "global_step": candidate.global_step,
                "eval_result": result.to_dict(),
            },
            "foreign_versions": [f.to_dict() for f in foreign],
            "comparison": self.strategy.comparator.describe(),
            "exporter": self.name,
            "uri": exporter.uri,
        }


class CompareBranchOperator(CompareOperator, BranchMixIn):
    """CompareOperator as a branch point: follows `follow_task_ids_if_better` when the
    candidate beats the best version (committed or foreign, as CompareOperator decides), else
    `follow_task_ids_if_not_better`; every other direct downstream task is skipped. The
    decision still goes to XCom.

    :param follow_task_ids_if_better: task or task group id(s) to run when better.
    :param follow_task_ids_if_not_better: task or task group id(s) to run otherwise.
    """

    inherits_from_skipmixin = True

    def __init__(
        self,
        *,
        follow_task_ids_if_better: str | Iterable[str],
        follow_task_ids_if_not_better: str | Iterable[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.follow_task_ids_if_better = follow_task_ids_if_better
        self.follow_task_ids_if_not_better = follow_task_ids_if_not_better

    def execute(self, context: Context) -> dict[str, Any]:
        """Compare, push the decision, then branch (skipping raises inside the runner, so
        the decision is pushed before branching)."""
        decision = self.compare()
        context["ti"].xcom_push(key=BaseXCom.XCOM_RETURN_KEY, value=decision)
        follow = (
            self.follow_task_ids_if_better
            if decision["better"]
            else self.follow_task_ids_if_not_better
        )
        self.do_branch(context, _as_list(follow))
        return decision


def _as_list(task_ids: str | Iterable[str]) -> list[str]:
    return [task_ids] if isinstance(task_ids, str) else list(task_ids)
