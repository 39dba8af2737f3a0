"""Final, latest and best SavedModel export operators (what tf.estimator's exporters did).

Each operator resolves a checkpoint of `model_dir`, asks its strategy whether it becomes a
new version of `<export_dir_base>` (default `<model_dir>/export/<name>`), writes the
SavedModel (one or several modes) only when it does, publishes it atomically and applies
retention. A new version is announced as an Airflow asset event (through an AssetAlias, so
skipped exports announce nothing) carrying its version, step and metrics. A task that
published no version ends as skipped, with its outcome in XCom all the same.

Retry-safe: the decision reads committed versions, so a retry after a crash finds the
version an earlier try published and returns it instead of exporting again. Foreign versions
in the exporter dir (e.g. tf.estimator's own exports) count by their global step and, for
Best, the eval result of that step in the event files; the XCom lists them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import Asset, AssetAlias, BaseOperator
from airflow.sdk.bases.xcom import BaseXCom
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from airflow_tf_export.core.comparison import loss_smaller
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.executors import local_path_warning
from airflow_tf_export.core.metadata import ExportMetadata, Lineage
from airflow_tf_export.core.strategies import (
    DEFAULT_EVENT_FILE_PATTERN,
    DEFAULT_EXPORTS_TO_KEEP,
    BestStrategy,
    ExportStrategy,
    FinalStrategy,
    LatestStrategy,
)
from airflow_tf_export.core.validation import parse_thresholds
from airflow_tf_export.hooks.storage import StorageHook, allowed_roots
from airflow_tf_export.operators._args import has_template, parse_comparison, parse_eval_result
from airflow_tf_export.savedmodel.export_run import (
    EvalEvents,
    export_checkpoint,
    saved_model_validator,
    saved_model_writer,
)
from airflow_tf_export.savedmodel.modes import SERVE, check_validated_modes, normalize_modes
from airflow_tf_export.storage.base import Storage
from airflow_tf_export.storage.export_flow import ExportOutcome, ValidateStaged
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.uris import exporter_uri, parse_uri

if TYPE_CHECKING:
    from airflow.sdk import Context

DEFAULT_CONN_ID = "google_cloud_default"
ASSET_ALIAS_PREFIX = "tf-export:"


@contextmanager
def failing_on_bad_input(what: str) -> Iterator[None]:
    """Turn a ValueError (bad input: retrying cannot help) into AirflowFailException."""
    try:
        yield
    except ValueError as err:
        raise AirflowFailException(f"{what}: {err}") from err


def lineage_from(context: Context) -> Lineage | None:
    """The task instance that runs the export, for the version's metadata."""
    ti = context.get("ti")
    if ti is None:
        return None
    return Lineage(
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        task_id=ti.task_id,
        try_number=ti.try_number,
        map_index=ti.map_index if ti.map_index is not None else -1,
    )


class SavedModelExportOperator(BaseOperator):
    """Shared shell of the final, latest and best export operators.

    :param name: exporter name, the directory `export/<name>` (one path segment).
    :param model_definition: import string `"package.module:attribute"` (or a callable) of
        the model definition that builds the model and its serving signatures.
    :param model_dir: local path or `gs://bucket/prefix` holding the checkpoints. (templated)
    :param export_dir_base: where versions are published; default `<model_dir>/export/<name>`.
        (templated)
    :param checkpoint_path: checkpoint prefix to export, or a Keras `<name>-<step>.weights.h5`
        file; default: the latest in the `checkpoint` state file. (templated)
    :param modes: SavedModel modes to write into one SavedModel sharing one set of variables:
        `("serve",)`, or `("train", "eval", "serve")` as export_all_saved_models did.
    :param assets_extra: `{destination inside assets.extra: source file}`; a source that is a
        symbolic link is copied as the file it resolves to (docs/security.md). (templated)
    :param as_text: write `saved_model.pbtxt` instead of `saved_model.pb`.
    :param gcp_conn_id: Airflow Google Cloud connection for `gs://` URIs. (templated)
    :param asset_alias: name of the AssetAlias through which new versions are announced as
        `Asset(<exporter dir URI>)` events; default `"tf-export:<exporter dir>"` (see
        `default_asset_alias`), one alias per exporter dir.
    :param validate: load the staged SavedModel in a fresh process and call every serving
        signature (and `eval`) on warmup examples before publishing it (docs/validation.md);
        a version that fails is not published and the task fails without retry.
    :param validation_examples: a TFRecord file (local or `gs://`) of serialized tf.Examples
        to validate with; default: the model definition's `warmup_examples`, else examples
        generated from the serving input's feature spec. (templated)
    :param validation_thresholds: bounds on validation outputs, e.g. `{"outputs":
        {"serving_default/scores": {"min": 0, "max": 1}}, "allow_nonfinite": ["eval/loss"]}`.
    :param warmup_requests: write TF Serving's warmup file
        `assets.extra/tf_serving_warmup_requests` (one request per serving signature on the
        warmup examples) into the version; needs `validate`.
    """

    template_fields: Sequence[str] = (
        "model_dir",
        "export_dir_base",
        "checkpoint_path",
        "assets_extra",
        "gcp_conn_id",
        "validation_examples",
    )
    ui_color = "#ffd8a8"
    strategy_kind: ClassVar[str]

    def __init__(
        self,
        *,
        name: str,
        model_definition: str | Callable[..., Any],
        model_dir: str,
        export_dir_base: str | None = None,
        checkpoint_path: str | None = None,
        modes: Sequence[str] = (SERVE,),
        assets_extra: Mapping[str, str] | None = None,
        as_text: bool = False,
        gcp_conn_id: str = DEFAULT_CONN_ID,
        asset_alias: str | None = None,
        validate: bool = True,
        validation_examples: str | None = None,
        validation_thresholds: Mapping[str, Any] | None = None,
        warmup_requests: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.model_definition = model_definition
        self.model_dir = model_dir
        self.export_dir_base = export_dir_base
        self.checkpoint_path = checkpoint_path
        self.modes = modes
        self.assets_extra = assets_extra
        self.as_text = as_text
        self.gcp_conn_id = gcp_conn_id
        self.asset_alias = asset_alias or default_asset_alias(model_dir, export_dir_base, name)
        if not (isinstance(model_definition, str) and model_definition) and not callable(
            model_definition
        ):
            raise ValueError(
                f"model_definition must be an import string 'package.module:attribute' or a "
                f"callable, got {model_definition!r}"
            )
        for argument, flag in (
            ("as_text", as_text),
            ("validate", validate),
            ("warmup_requests", warmup_requests),
        ):
            if not isinstance(flag, bool):
                raise ValueError(f"{argument} must be True or False, got {flag!r}")
        if warmup_requests and not validate:
            raise ValueError("warmup_requests=True needs validate=True (the requests are checked)")
        if validation_examples is not None and not (
            isinstance(validation_examples, str) and validation_examples
        ):
            raise ValueError(
                f"validation_examples must be a TFRecord file path or URI, got "
                f"{validation_examples!r}"
            )
        self.validate = validate
        self.validation_examples = validation_examples
        self.validation_thresholds = parse_thresholds(validation_thresholds)
        self.warmup_requests = warmup_requests
        self.strategy = self.build_strategy()
        normalize_modes(modes)
        if validate:
            check_validated_modes(modes, warmup_requests=warmup_requests)
        self.add_outlets([AssetAlias(self.asset_alias)])
        exporter_uri = _static_exporter_uri(model_dir, export_dir_base, name)
        if exporter_uri is not None:
            # Parsing the DAG registers the asset, so two tasks announcing the first version
            # of a new exporter dir at once do not both create it (one would fail on
            # idx_asset_name_uri_unique). An inlet emits no events.
            self.add_inlets([Asset(uri=exporter_uri, name=exporter_uri)])

    def build_strategy(self) -> ExportStrategy:
        """The core strategy for the non-templated arguments (validated at parse time)."""
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        """Export if the strategy says so and return the JSON-able outcome (see the docs'
        XCom reference). A task that published no version pushes the same outcome to XCom
        and ends as skipped, so the UI tells an export from none."""
        hook = StorageHook(gcp_conn_id=self.gcp_conn_id)
        lineage = lineage_from(context)
        with failing_on_bad_input(f"{self.strategy_kind} export {self.name!r}"):
            self._warn_if_local_path_spans_hosts()
            run = export_checkpoint(
                storage_for=hook.storage_for,
                model_dir=self.model_dir,
                name=self.name,
                strategy=self.strategy,
                write=functools.partial(
                    saved_model_writer,
                    self.model_definition,
                    modes=self.modes,
                    assets_extra=self.assets_extra,
                    as_text=self.as_text,
                    allowed_roots=allowed_roots(),
                ),
                export_dir_base=self.export_dir_base,
                checkpoint_path=self.checkpoint_path,
                eval_result=self.given_eval_result(),
                events=self.eval_events,
                final_export=self.final_export,
                lineage=lineage,
                validate=self.staged_validator(hook),
            )
        result = run.to_dict(self.name, self.strategy_kind)
        new = _new_version(run.outcome, lineage)
        result["new_version"] = None if new is None else new.version
        reason = run.outcome.decision.reason
        self.log.info("%s export %r: %s", self.strategy_kind, self.name, reason)
        if new is None:
            if self.do_xcom_push:
                context["ti"].xcom_push(key=BaseXCom.XCOM_RETURN_KEY, value=result)
            raise AirflowSkipException(f"no new version: {reason}")
        self._announce(context, run.exporter, new)
        return result

    def staged_validator(self, hook: StorageHook) -> ValidateStaged | None:
        """The check of the staged SavedModel before publishing, unless `validate=False`."""
        if not self.validate:
            return None
        from airflow_tf_export.savedmodel.validation import ValidationOptions

        options = ValidationOptions(
            examples=self.validation_examples,
            thresholds=self.validation_thresholds,
            warmup_requests=self.warmup_requests,
        )
        return saved_model_validator(self.model_definition, hook.storage_for, options)

    def _warn_if_local_path_spans_hosts(self) -> None:
        """Log a warning when the model dir or exporter dir is local and the executor may
        run tasks on several hosts (ValueError for a bad URI)."""
        from airflow.sdk import conf

        model_dir = parse_uri(self.model_dir)  # first, so an error names the model dir
        exporter = parse_uri(exporter_uri(self.model_dir, self.name, self.export_dir_base))
        local = [str(uri) for uri in (model_dir, exporter) if not uri.is_gcs]
        warning = local_path_warning(
            executor_setting=conf.get("core", "executor"),
            task_executor=self.executor,
            local_paths=local,
        )
        if warning:
            self.log.warning("%s export %r: %s", self.strategy_kind, self.name, warning)

    def given_eval_result(self) -> EvalResult | None:
        """The eval result argument, parsed (only Best takes one)."""
        return None

    def eval_events(self, storage: Storage) -> EvalEvents | None:
        """Where eval results are read: the candidate's when none was given, and the foreign
        versions' (only Best compares eval results)."""
        return None

    def final_export(self, global_step: int) -> bool:
        """Whether this export is the final one (only Final asks)."""
        return False

    def _announce(self, context: Context, exporter: ExporterDir, meta: ExportMetadata) -> None:
        """Add an `Asset(<exporter dir>)` event with the version's facts to the alias."""
        extra = {
            "exporter": meta.exporter,
            "strategy": meta.strategy,
            "version": meta.version,
            "version_uri": exporter.version_uri(meta.version),
            "global_step": meta.global_step,
            "checkpoint_path": meta.checkpoint_path,
            "metrics": {} if meta.eval_result is None else meta.eval_result.to_dict()["metrics"],
        }
        asset = Asset(uri=exporter.uri, name=exporter.uri)
        context["outlet_events"][AssetAlias(self.asset_alias)].add(asset, extra=extra)


def default_asset_alias(model_dir: object, export_dir_base: object, name: str) -> str:
    """`tf-export:<exporter dir>`: the exporter dir's URI (`<model_dir>/export/<name>` or
    `export_dir_base`, normalised), so two models' exporters named alike never share an
    alias. When a template decides the exporter dir, the URI is known only at run time and
    the alias must be known when the DAG is parsed: it then names the exporter dir as
    written, template included (e.g. `tf-export:{{ params.model_dir }}/export/best`)."""
    uri = _static_exporter_uri(model_dir, export_dir_base, name)
    if uri is None:
        written = export_dir_base or f"{str(model_dir).rstrip('/')}/export/{name}"
        uri = str(written)
    return f"{ASSET_ALIAS_PREFIX}{uri}"


def _static_exporter_uri(model_dir: object, export_dir_base: object, name: str) -> str | None:
    """The exporter dir's URI when no template decides it (else None: known only at run time)."""
    deciding = model_dir if export_dir_base is None else export_dir_base
    if not isinstance(deciding, str) or has_template(deciding):
        return None
    try:
        if export_dir_base is None:
            return exporter_uri(deciding, name)
        return exporter_uri(str(model_dir), name, deciding)
    except ValueError:
        return None  # execute() reports the bad URI


def _new_version(outcome: ExportOutcome, lineage: Lineage | None) -> ExportMetadata | None:
    """The version this task published: now, or by an earlier try that crashed before
    announcing it (same dag run, task and map index), so a retry still announces it."""
    meta = outcome.metadata
    if meta is None:
        return None
    if outcome.exported:
        return meta
    if lineage is None or meta.lineage is None:
        return None
    earlier = meta.lineage
    same_task = (earlier.dag_id, earlier.run_id, earlier.task_id, earlier.map_index) == (
        lineage.dag_id,
        lineage.run_id,
        lineage.task_id,
        lineage.map_index,
    )
    return meta if same_task and earlier.try_number < lineage.try_number else None


class FinalExportOperator(SavedModelExportOperator):
    """Exports once, at the end of training (tf.estimator.FinalExporter).

    Give `is_the_final_export`, or `max_steps`: the export is final when the checkpoint's
    global step is at least `max_steps`, as train_and_evaluate decided. A rerun for the same
    checkpoint returns the existing final version; a foreign version (e.g. the Estimator's
    own final export) of the same or a newer step counts as the final export.

    :param is_the_final_export: whether this run's checkpoint is the final one.
    :param max_steps: the training's max_steps, from which `is_the_final_export` is derived.
    """

    strategy_kind = "final"

    def __init__(
        self,
        *,
        name: str,
        is_the_final_export: bool | None = None,
        max_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.is_the_final_export = is_the_final_export
        self.max_steps = max_steps
        if (is_the_final_export is None) == (max_steps is None):
            raise ValueError(
                f"final export {name!r} needs exactly one of is_the_final_export or max_steps, "
                f"got is_the_final_export={is_the_final_export!r}, max_steps={max_steps!r}"
            )
        if is_the_final_export is not None and not isinstance(is_the_final_export, bool):
            raise ValueError(
                f"is_the_final_export must be True or False, got {is_the_final_export!r}"
            )
        if max_steps is not None and (
            isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps <= 0
        ):
            raise ValueError(f"max_steps must be a positive integer, got {max_steps!r}")
        super().__init__(name=name, **kwargs)

    def build_strategy(self) -> ExportStrategy:
        """FinalStrategy (no retention: final versions are kept)."""
        return FinalStrategy(name=self.name)

    def final_export(self, global_step: int) -> bool:
        """`is_the_final_export`, or `global_step >= max_steps`."""
        if self.max_steps is not None:
            return global_step >= self.max_steps
        return bool(self.is_the_final_export)


class LatestExportOperator(SavedModelExportOperator):
    """Exports every checkpoint newer than the newest published one, foreign versions (e.g.
    the Estimator's own exports) included, keeping the `exports_to_keep` newest committed
    versions (tf.estimator.LatestExporter).

    :param exports_to_keep: positive number of newest versions to keep, or None to keep all.
    """

    strategy_kind = "latest"

    def __init__(
        self, *, name: str, exports_to_keep: int | None = DEFAULT_EXPORTS_TO_KEEP, **kwargs: Any
    ) -> None:
        self.exports_to_keep = exports_to_keep
        super().__init__(name=name, **kwargs)

    def build_strategy(self) -> ExportStrategy:
        """LatestStrategy (validates `exports_to_keep`)."""
        return LatestStrategy(name=self.name, exports_to_keep=self.exports_to_keep)


class BestExportOperator(SavedModelExportOperator):
    """Exports a checkpoint only when its eval result beats every committed version's and
    every foreign version's (the eval result of its step)
    (tf.estimator.BestExporter, with the best derived from the published versions so a
    restart never exports a worse model: tensorflow/tensorflow#47396).

    :param eval_result: the candidate's eval result: the EvalMetricsSensor's XCom (a dict,
        its JSON, an XComArg). When empty, it is read from the event files. The checkpoint
        it records (`checkpoint_path`, where the model dir was when it was evaluated) is
        resolved in `model_dir` (docs/model-dir.md). (templated)
    :param compare_fn: `compare_fn(best_eval_result, current_eval_result) -> bool`; default
        "loss smaller".
    :param comparison: a declared comparison instead of `compare_fn`: a MetricComparison or
        `{"metric": "auc", "higher_is_better": True, "min_delta": 0.001, ...}`.
    :param exports_to_keep: positive number of newest versions to keep (the best version is
        always kept), or None to keep all.
    :param event_file_pattern: glob, relative to `model_dir`, of the eval event files (the
        candidate's eval result when none is given, and the foreign versions'). (templated)
    """

    template_fields: Sequence[str] = (
        *SavedModelExportOperator.template_fields,
        "eval_result",
        "event_file_pattern",
    )
    strategy_kind = "best"

    def __init__(
        self,
        *,
        name: str = "best_exporter",
        eval_result: EvalResult | Mapping[str, Any] | str | None = None,
        compare_fn: Callable[..., Any] | None = loss_smaller,
        comparison: Mapping[str, Any] | None = None,
        exports_to_keep: int | None = DEFAULT_EXPORTS_TO_KEEP,
        event_file_pattern: str = DEFAULT_EVENT_FILE_PATTERN,
        **kwargs: Any,
    ) -> None:
        self.eval_result = eval_result
        self.compare_fn = compare_fn
        self.comparison = comparison
        self.exports_to_keep = exports_to_keep
        self.event_file_pattern = event_file_pattern
        super().__init__(name=name, **kwargs)

    def build_strategy(self) -> ExportStrategy:
        """BestStrategy (validates compare_fn's argument names, the comparison and
        `exports_to_keep`)."""
        return best_strategy(self.name, self.compare_fn, self.comparison, self.exports_to_keep)

    def given_eval_result(self) -> EvalResult | None:
        """`eval_result`, parsed (ValueError names it when it is not an eval result); the
        event file pattern is checked here too, whether or not it is needed."""
        check_event_file_pattern(self.event_file_pattern)
        return parse_eval_result(self.eval_result)

    def eval_events(self, storage: Storage) -> EvalEvents:
        """The event files of `event_file_pattern` in the model dir (read when first needed)."""
        return EvalEvents(storage, self.model_dir, self.event_file_pattern)


def best_strategy(
    name: str,
    compare_fn: Callable[..., Any] | None,
    comparison: Mapping[str, Any] | None,
    exports_to_keep: int | None,
) -> BestStrategy:
    """A BestStrategy from operator arguments (ValueError names a bad one)."""
    return BestStrategy(
        name=name,
        compare_fn=compare_fn,
        comparison=None if comparison is None else parse_comparison(comparison),
        exports_to_keep=exports_to_keep,
    )


def check_event_file_pattern(pattern: object) -> None:
    """ValueError unless `pattern` is a glob relative to the model dir. The events package
    (protobuf descriptors) is imported here, at execute time, to keep DAG parsing fast."""
    from airflow_tf_export.events.eval_dir import validate_event_file_pattern

    validate_event_file_pattern(pattern)
