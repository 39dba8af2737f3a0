"""A separate process that exports or publishes one checkpoint, for crash and race tests.

    python storage_publish_worker.py latest <exporter_uri> <step> <delay_per_file>
        prints "ready", exports step <step> with LatestStrategy, prints "done <version>".
    python storage_publish_worker.py publish <exporter_uri> <step> <go_file> <now_seconds>
        prints "ready", waits for <go_file>, publishes step <step> directly,
        prints "done <version>".
    python storage_publish_worker.py best <exporter_uri> <step> <loss> <go_file>
        prints "ready", waits for <go_file>, exports step <step> with BestStrategy,
        prints "done <version>" (version 0 when it skipped).

gs:// URIs use the emulator (or proxy) named by STORAGE_EMULATOR_HOST.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from storage_test_models import write_model_files

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.core.strategies import BestStrategy, Candidate, LatestStrategy
from airflow_tf_export.storage import storage_for
from airflow_tf_export.storage.export_flow import export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir


def _client() -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="test-project",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": os.environ["STORAGE_EMULATOR_HOST"]},
    )


def _wait_for(go_file: str) -> None:
    print("ready", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.005)


def _checkpoint(step: int) -> str:
    return f"/model/ckpt-{step}"


def main(argv: list[str]) -> None:
    command, uri = argv[0], argv[1]
    step = int(argv[2])
    exporter = ExporterDir(storage_for(uri, gcs_client_factory=_client), uri)
    if command == "latest":
        delay = float(argv[3])
        print("ready", flush=True)
        outcome = export_with_strategy(
            exporter,
            LatestStrategy(name="latest", exports_to_keep=None),
            Candidate(_checkpoint(step), step),
            lambda d: write_model_files(d, step, delay_seconds=delay),
        )
        assert outcome.metadata is not None
        print(f"done {outcome.metadata.version}", flush=True)
    elif command == "publish":
        _wait_for(argv[3])
        template = ExportMetadata(
            exporter="race",
            strategy="latest",
            version=0,
            checkpoint_path=_checkpoint(step),
            global_step=step,
            created_at="2027-01-15T08:00:00Z",
        )
        with exporter.storage.staging_dir(uri) as staging:
            write_model_files(staging, step)
            published = exporter.storage.publish_version(
                staging, uri, template, now_seconds=int(argv[4])
            )
        print(f"done {published.version}", flush=True)
    elif command == "best":
        loss = float(argv[3])
        _wait_for(argv[4])
        outcome = export_with_strategy(
            exporter,
            BestStrategy(name="best", exports_to_keep=None),
            Candidate(_checkpoint(step), step, EvalResult(step, {"loss": loss})),
            lambda d: write_model_files(d, step),
        )
        version = outcome.metadata.version if outcome.exported and outcome.metadata else 0
        print(f"done {version}", flush=True)
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
