"""A long-lived process that exports or runs the RetentionOperator on command, for the race
tests of retention against exports (one process per role, reused across trials: starting
Airflow and the storage clients once keeps many trials fast).

    python storage_race_worker.py <exporter_uri>

prints "ready", then reads one command per line from stdin and answers with one line
"result <JSON>" (other lines are Airflow's log):

    export <step> <grace> <delay_per_file>
        exports step <step> with LatestStrategy (its own retention with that staging grace)
        -> {"exported": bool, "version": int | null}
    retain <grace> <stop_file> <pause>
        runs the RetentionOperator (keep newest 2) on the exporter dir again and again, with a
        random pause of up to <pause> seconds between runs (so exports get the exporter lock
        too), until <stop_file> exists
        -> {"runs": n, "deleted": [versions], "staging_deleted": [names], "in_use": n}
        (in_use: how many times a plan kept a staging dir because a running export held it)

gs:// URIs use the emulator (or proxy) named by STORAGE_EMULATOR_HOST, and the operator's
Airflow connection `google_cloud_default` (set by the test through AIRFLOW_CONN_...).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any

from storage_test_models import write_model_files

from airflow_tf_export.core.strategies import Candidate, LatestStrategy
from airflow_tf_export.storage import storage_for
from airflow_tf_export.storage.export_flow import export_with_strategy
from airflow_tf_export.storage.exporter_dir import ExporterDir

SHARDS = 2  # variable shards of the models exported (10 files: fewer requests on GCS)
IN_USE = "in use by a running export"
RESULT = "result"  # the prefix of answers (Airflow logs to stdout too)


def _client() -> Any:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project="test-project",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": os.environ["STORAGE_EMULATOR_HOST"]},
    )


def export(exporter: ExporterDir, step: int, grace: float, delay: float) -> dict[str, Any]:
    outcome = export_with_strategy(
        exporter,
        LatestStrategy(name="latest", exports_to_keep=None),
        Candidate(f"/model/ckpt-{step}", step),
        lambda d: write_model_files(d, step, shards=SHARDS, delay_seconds=delay),
        staging_grace_seconds=grace,
    )
    version = outcome.metadata.version if outcome.exported and outcome.metadata else None
    return {"exported": outcome.exported, "version": version}


def retain(uri: str, grace: float, stop_file: str, pause: float) -> dict[str, Any]:
    from airflow_tf_export.operators.retention import RetentionOperator  # Airflow: slow import

    operator = RetentionOperator(
        task_id="retention",
        exporter_dirs=[uri],
        keep={"newest": 2},
        staging_grace_seconds=grace,
    )
    runs, deleted, staging_deleted, in_use = 0, [], [], 0
    while not os.path.exists(stop_file) or runs == 0:
        (plan,) = operator.execute({})["exporters"]  # type: ignore[arg-type]
        runs += 1
        deleted += [item["version"] for item in plan["delete"]]
        staging_deleted += plan["staging_delete"]
        in_use += sum(IN_USE in line for line in plan["explain"].splitlines())
        time.sleep(random.uniform(0, pause))
    return {"runs": runs, "deleted": deleted, "staging_deleted": staging_deleted, "in_use": in_use}


def main(uri: str) -> None:
    exporter = ExporterDir(storage_for(uri, gcs_client_factory=_client), uri)
    print("ready", flush=True)
    for line in sys.stdin:
        command, *args = line.split()
        if command == "export":
            result = export(exporter, int(args[0]), float(args[1]), float(args[2]))
        elif command == "retain":
            result = retain(uri, float(args[0]), args[1], float(args[2]))
        else:
            raise SystemExit(f"unknown command {command!r}")
        print(RESULT, json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
