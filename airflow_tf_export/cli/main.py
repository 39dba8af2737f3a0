"""`airflow-tf-export`: the exporter dirs of a model, outside Airflow::

    airflow-tf-export versions --model-dir gs://bucket/models/ctr --keep '{"newest": 2}'
    airflow-tf-export retention gs://bucket/models/ctr/export/best --keep '{"newest": 2}'
    airflow-tf-export verify gs://bucket/models/ctr/export/best/1718000000
    airflow-tf-export export --model-definition my_pkg.model:definition \\
        --model-dir gs://bucket/models/ctr --name latest

Every command takes local paths and gs:// URIs. GCS is reached with Application Default
Credentials (or the emulator named by STORAGE_EMULATOR_HOST); no Airflow connection or
metadata DB is needed. The environment variable AIRFLOW__TF_EXPORT__ALLOWED_ROOTS confines
every command as the Airflow option `[tf_export] allowed_roots` confines the tasks (the CLI
reads no airflow.cfg). `--json` prints one JSON document instead of text. Only `export`
writes; `retention` is a dry run. Exit codes: see EXIT_CODES.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from airflow_tf_export.cli.listing import (
    evaluated_metrics,
    exporter_dirs_of,
    exporter_listing,
    exporter_plan,
    listing_table,
)
from airflow_tf_export.core.comparison import loss_smaller
from airflow_tf_export.core.strategies import (
    DEFAULT_EVENT_FILE_PATTERN,
    DEFAULT_EXPORTS_TO_KEEP,
    BestStrategy,
    ExportStrategy,
    FinalStrategy,
    LatestStrategy,
)
from airflow_tf_export.operators._args import parse_comparison
from airflow_tf_export.storage import Storage, StorageError, storage_for
from airflow_tf_export.storage.base import StorageNotFoundError, VersionIntegrityError
from airflow_tf_export.storage.confinement import (
    ALLOWED_ROOTS_ENV,
    AllowedRoots,
    ConfinementError,
    confined_storage,
)
from airflow_tf_export.storage.exporter_dir import ExporterDir

OK = 0
VERIFY_FAILED = 1
BAD_INPUT = 2
STORAGE_FAILED = 3
NOTHING_EXPORTED = 4
EXIT_CODES = {
    OK: "done (export: a new version was published)",
    VERIFY_FAILED: "verify: the version does not match its manifest, or it is not committed",
    BAD_INPUT: "bad arguments or bad input, or a path outside the allowed roots (the message "
    "names it); nothing was changed",
    STORAGE_FAILED: "storage error: a path that does not exist, or GCS unreachable",
    NOTHING_EXPORTED: "export: the strategy exported nothing (the reason is printed)",
}
DEFAULT_KEEP = json.dumps({"newest": DEFAULT_EXPORTS_TO_KEEP})


class CommandFailed(Exception):
    """Ends the command with `exit_code` after its output was printed."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


def _json_argument(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r} ({error})") from None


def _location(text: str) -> str:
    """A local path (relative ones resolved against the working directory) or a URI."""
    if "://" in text or text.startswith("/"):
        return text
    return os.path.abspath(text)


def _allowed_roots() -> AllowedRoots | None:
    """The roots of AIRFLOW__TF_EXPORT__ALLOWED_ROOTS, or None when it is unset or blank."""
    return AllowedRoots.parse(os.environ.get(ALLOWED_ROOTS_ENV), ALLOWED_ROOTS_ENV)


def _storage_for(uri: str) -> Storage:
    """The Storage for `uri`, confined to the allowed roots when they are set."""
    return confined_storage(uri, _allowed_roots(), storage_for)


def _exporter(uri: str) -> ExporterDir:
    """The exporter dir at `uri`; StorageNotFoundError when nothing is there."""
    storage = _storage_for(uri)
    if not storage.exists(uri):
        raise StorageNotFoundError(f"exporter dir {uri} does not exist or is empty")
    return ExporterDir(storage, uri)


def _emit(args: argparse.Namespace, document: Any, text: str) -> None:
    print(json.dumps(document, indent=2, sort_keys=True) if args.json else text)


def versions(args: argparse.Namespace) -> None:
    """List the committed versions with step, metrics and retention verdict (a dry run)."""
    uris = list(args.exporter_dirs)
    if args.model_dir is None and not uris:
        raise ValueError("give exporter dirs, or --model-dir to list every <model_dir>/export/*")
    if not uris:
        uris = exporter_dirs_of(_storage_for(args.model_dir), args.model_dir)
        if not uris:
            raise StorageNotFoundError(f"{args.model_dir} has no exporter dir under export/")
    evaluated = (
        {}
        if args.model_dir is None
        else evaluated_metrics(
            _storage_for(args.model_dir), args.model_dir, args.event_file_pattern
        )
    )
    listings = [exporter_listing(_exporter(uri), args.keep, evaluated) for uri in uris]
    rules = json.dumps(args.keep, sort_keys=True)
    text = "\n\n".join(
        [f"Retention verdicts with keep={rules} (a dry run: nothing is deleted)"]
        + [listing_table(listing) for listing in listings]
    )
    _emit(args, {"keep": args.keep, "exporters": listings}, text)


def retention(args: argparse.Namespace) -> None:
    """Print what a retention task with these keep rules would delete and why."""
    plans = []
    for uri in args.exporter_dirs:
        exporter = _exporter(uri)
        state, plan = exporter_plan(exporter, args.keep)
        plans.append(
            {
                "uri": exporter.uri,
                "keep": [{"version": i.version, "rule": i.rule} for i in plan.items if i.keep],
                "delete": [
                    {"version": i.version, "reason": i.reason} for i in plan.items if not i.keep
                ],
                "staging_delete": list(plan.uncommitted_delete),
                "foreign": list(plan.foreign_versions),
                "invalid": [{"version": v, "error": e} for v, e in state.invalid],
                "explain": plan.explain(),
            }
        )
    text = "\n\n".join(f"{p['uri']} (dry run: nothing deleted)\n{p['explain']}" for p in plans)
    _emit(args, {"dry_run": True, "keep": args.keep, "exporters": plans}, text)


def verify(args: argparse.Namespace) -> None:
    """Read every file of a version back and compare it with its manifest."""
    uri = args.version_dir.rstrip("/")
    parent, _, name = uri.rpartition("/")
    if not name.isdigit() or not parent:
        raise ValueError(
            f"{args.version_dir!r} is not a version directory: give "
            "<exporter dir>/<version>, e.g. gs://bucket/model/export/best/1718000000"
        )
    exporter = ExporterDir(_storage_for(parent), parent)
    try:
        verified = exporter.verify(int(name))
    except VersionIntegrityError as error:
        _emit(args, {"uri": uri, "ok": False, "error": str(error)}, f"FAILED {uri}: {error}")
        raise CommandFailed(VERIFY_FAILED) from None
    meta = verified.metadata
    size = sum(entry.size for entry in meta.manifest)
    document = {
        "uri": exporter.version_uri(meta.version),
        "ok": True,
        "files": len(meta.manifest),
        "bytes": size,
        "exporter": meta.exporter,
        "strategy": meta.strategy,
        "global_step": meta.global_step,
        "checkpoint_path": meta.checkpoint_path,
        "tags": list(meta.tags),
        "metadata_checksum": verified.metadata_checksum,
        "note": verified.note,
    }
    text = (
        f"OK {document['uri']}: {len(meta.manifest)} files, {size} bytes match the manifest "
        f"(size and CRC32C); {meta.strategy} export of step {meta.global_step} "
        f"from {meta.checkpoint_path}; {verified.note}"
    )
    _emit(args, document, text)


def export(args: argparse.Namespace) -> None:
    """Export one checkpoint with a model definition, as the export operators do."""
    from airflow_tf_export.core.validation import parse_thresholds
    from airflow_tf_export.savedmodel.export_run import (
        EvalEvents,
        export_checkpoint,
        saved_model_validator,
        saved_model_writer,
    )
    from airflow_tf_export.savedmodel.modes import check_validated_modes
    from airflow_tf_export.savedmodel.validation import ValidationOptions

    strategy = _strategy(args)
    if args.warmup_requests and not args.validate:
        raise ValueError("--warmup-requests needs validation (drop --no-validate)")
    if args.validate:
        check_validated_modes(args.modes, warmup_requests=args.warmup_requests)
    options = ValidationOptions(
        examples=args.validation_examples,
        thresholds=parse_thresholds(args.validation_thresholds),
        warmup_requests=args.warmup_requests,
    )
    run = export_checkpoint(
        storage_for=_storage_for,
        model_dir=args.model_dir,
        name=args.name,
        strategy=strategy,
        write=lambda storage: saved_model_writer(
            args.model_definition,
            storage,
            modes=args.modes,
            as_text=args.as_text,
            allowed_roots=_allowed_roots(),
        ),
        export_dir_base=args.export_dir_base,
        checkpoint_path=args.checkpoint,
        events=lambda storage: (
            EvalEvents(storage, args.model_dir, args.event_file_pattern)
            if args.strategy == "best"
            else None
        ),
        final_export=lambda step: args.strategy == "final",
        validate=(
            saved_model_validator(args.model_definition, _storage_for, options)
            if args.validate
            else None
        ),
    )
    result = run.to_dict(args.name, args.strategy)
    outcome = run.outcome
    if outcome.exported:
        text = (
            f"exported step {run.candidate.global_step} from {run.candidate.checkpoint_path} "
            f"as {outcome.version_uri}: {outcome.decision.reason}"
        )
    else:
        text = f"nothing exported to {run.exporter.uri}: {outcome.decision.reason}"
    _emit(args, result, text)
    if not outcome.exported:
        raise CommandFailed(NOTHING_EXPORTED)


def _strategy(args: argparse.Namespace) -> ExportStrategy:
    keep = None if args.exports_to_keep == 0 else args.exports_to_keep
    if args.strategy == "final":
        return FinalStrategy(name=args.name)
    if args.strategy == "latest":
        return LatestStrategy(name=args.name, exports_to_keep=keep)
    comparison = None if args.comparison is None else parse_comparison(args.comparison)
    return BestStrategy(
        name=args.name,
        compare_fn=loss_smaller if comparison is None else None,
        comparison=comparison,
        exports_to_keep=keep,
    )


def parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per job."""
    top = argparse.ArgumentParser(
        prog="airflow-tf-export",
        description="Inspect, verify and export the versions of TensorFlow exporter dirs "
        "(local paths or gs://) without Airflow.",
        epilog="exit codes: " + "; ".join(f"{code} {what}" for code, what in EXIT_CODES.items()),
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[argparse.Namespace], None]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=(run.__doc__ or "").strip())
        sub.set_defaults(run=run)
        return sub

    keep_help = f'keep rules as JSON, e.g. \'{{"newest": 2, "best": 1}}\' (default {DEFAULT_KEEP})'
    listed = command("versions", versions)
    listed.add_argument("exporter_dirs", nargs="*", type=_location, metavar="EXPORTER_DIR")
    listed.add_argument(
        "--model-dir",
        type=_location,
        help="read step metrics from its eval event files; with no EXPORTER_DIR, list every "
        "<model_dir>/export/*",
    )
    listed.add_argument("--keep", type=_json_argument, default=DEFAULT_KEEP, help=keep_help)
    listed.add_argument("--event-file-pattern", default=DEFAULT_EVENT_FILE_PATTERN)

    planned = command("retention", retention)
    planned.add_argument("exporter_dirs", nargs="+", type=_location, metavar="EXPORTER_DIR")
    planned.add_argument("--keep", type=_json_argument, default=DEFAULT_KEEP, help=keep_help)

    checked = command("verify", verify)
    checked.add_argument(
        "version_dir", type=_location, metavar="VERSION_DIR", help="<exporter dir>/<version>"
    )

    exported = command("export", export)
    exported.add_argument(
        "--model-definition", required=True, help="import string 'package.module:attribute'"
    )
    exported.add_argument(
        "--model-dir", required=True, type=_location, help="local path or gs://bucket/prefix"
    )
    exported.add_argument("--name", required=True, help="exporter name: <model_dir>/export/<name>")
    exported.add_argument(
        "--strategy",
        choices=("latest", "final", "best"),
        default="latest",
        help="latest: export unless a version of this or a newer step exists; final: export "
        "once as the final version; best: export only if better (eval results from the "
        "event files)",
    )
    exported.add_argument(
        "--checkpoint", help="checkpoint prefix or .weights.h5 file; default: the latest"
    )
    exported.add_argument(
        "--export-dir-base", type=_location, help="default <model_dir>/export/<name>"
    )
    exported.add_argument(
        "--modes", nargs="+", default=["serve"], help="SavedModel modes: serve, train, eval"
    )
    exported.add_argument("--as-text", action="store_true", help="write saved_model.pbtxt")
    exported.add_argument(
        "--exports-to-keep",
        type=int,
        default=DEFAULT_EXPORTS_TO_KEEP,
        help="newest versions to keep (latest, best); 0 keeps all",
    )
    exported.add_argument(
        "--comparison",
        type=_json_argument,
        help='best: e.g. \'{"metric": "auc", '
        '"higher_is_better": true}\' (default: loss, lower is better)',
    )
    exported.add_argument("--event-file-pattern", default=DEFAULT_EVENT_FILE_PATTERN)
    exported.add_argument(
        "--no-validate",
        dest="validate",
        action="store_false",
        help="publish without loading the SavedModel in a fresh process and calling its "
        "signatures first",
    )
    exported.add_argument(
        "--validation-examples", help="TFRecord file of serialized tf.Examples to validate with"
    )
    exported.add_argument(
        "--validation-thresholds",
        type=_json_argument,
        help='e.g. \'{"outputs": {"serving_default/scores": {"min": 0, "max": 1}}}\'',
    )
    exported.add_argument(
        "--warmup-requests",
        action="store_true",
        help="write assets.extra/tf_serving_warmup_requests for TF Serving",
    )
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code (EXIT_CODES)."""
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except CommandFailed as failed:
        return failed.exit_code
    except (ValueError, ConfinementError) as error:
        print(f"airflow-tf-export {args.command}: {error}", file=sys.stderr)
        return BAD_INPUT
    except _storage_errors() as error:
        print(f"airflow-tf-export {args.command}: {error}", file=sys.stderr)
        return STORAGE_FAILED
    return OK


def _storage_errors() -> tuple[type[BaseException], ...]:
    """Storage failures, and GCS credentials that cannot be found (with the gcs extra)."""
    try:
        from google.auth.exceptions import GoogleAuthError
    except ImportError:
        return (StorageError, OSError)
    return (StorageError, OSError, GoogleAuthError)


if __name__ == "__main__":
    sys.exit(main())
