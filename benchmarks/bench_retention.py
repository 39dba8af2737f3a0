"""Retention and GCS publishing costs, against baselines measured in the same run.

1. Planning retention over 100,000 committed versions (median of several runs; target < 1 s),
   compared with just sorting those versions (a lower bound for any planner).
2. On a gcp-storage-emulator subprocess, real HTTP requests counted by a proxy:
   a. publishing a 50-file SavedModel, vs. a naive "stage, then rename" publish (upload to a
      temp prefix, copy every object, delete every staged object: what a directory rename
      is on GCS);
   b. deleting 1,000 versions of 5 files each, vs. one DELETE request per object.

The last line printed is one JSON object with every figure.

    .venv/bin/python benchmarks/bench_retention.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from gcs_fixtures import RecordingProxy, emulator_client, running_emulator

from airflow_tf_export.core.comparison import MetricComparison, best_version
from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import ExportMetadata
from airflow_tf_export.core.retention import (
    KeepBest,
    KeepEveryHours,
    KeepEverySteps,
    KeepNewest,
    PlanItem,
    RetentionPlan,
    plan_retention,
)
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.gcs import GcsStorage

VERSIONS = 100_000
PLAN_RUNS = 5
BASE_VERSION = 1_700_000_000
PUBLISH_FILES = 50
DELETE_VERSIONS = 1_000
FILES_PER_VERSION = 5


def _committed(count: int) -> list[ExportMetadata]:
    return [
        ExportMetadata(
            exporter="best",
            strategy="best",
            version=BASE_VERSION + i * 60,
            checkpoint_path=f"/model/ckpt-{i * 100}",
            global_step=i * 100,
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BASE_VERSION + i * 60)),
            eval_result=EvalResult(i * 100, {"loss": 1.0 / (1 + (i * 7919) % 1000)}),
        )
        for i in range(count)
    ]


def _median_seconds(run: Any, runs: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def bench_planning() -> dict[str, Any]:
    committed = _committed(VERSIONS)
    comparison = MetricComparison()
    rules = [KeepNewest(5), KeepBest(3, comparison), KeepEverySteps(100_000), KeepEveryHours(24)]
    best = best_version(committed, comparison)
    assert best is not None
    plan_median, plan_runs = _median_seconds(
        lambda: plan_retention(committed, rules, best=best.version), PLAN_RUNS
    )
    sort_median, _ = _median_seconds(lambda: sorted(committed, key=lambda m: m.version), PLAN_RUNS)
    plan = plan_retention(committed, rules, best=best.version)
    print(
        f"planning {VERSIONS} versions: median {plan_median:.3f} s over {PLAN_RUNS} runs "
        f"({len(plan.keep_versions)} kept), sorting alone {sort_median:.3f} s"
    )
    return {
        "plan_seconds_100k": round(plan_median, 4),
        "plan_seconds_runs": [round(t, 4) for t in plan_runs],
        "plan_target_seconds": 1.0,
        "sort_seconds_100k": round(sort_median, 4),
        "plan_vs_sort_ratio": round(plan_median / sort_median, 2),
    }


def _write_savedmodel(directory: Path, files: int) -> None:
    (directory / "variables").mkdir(parents=True)
    (directory / "saved_model.pb").write_bytes(b"graph" * 200)
    (directory / "variables" / "variables.index").write_bytes(b"index" * 20)
    for i in range(files - 2):
        (directory / "variables" / f"variables.data-{i:05d}-of-{files - 2:05d}").write_bytes(
            bytes([i % 256]) * 4096
        )


def _count(proxy: RecordingProxy, run: Any) -> int:
    proxy.reset()
    run()
    return proxy.count()


def _template() -> ExportMetadata:
    return ExportMetadata(
        exporter="best",
        strategy="best",
        version=0,
        checkpoint_path="/model/ckpt-1",
        global_step=1,
        created_at="2027-01-15T08:00:00Z",
    )


def _naive_publish(client: Any, bucket: str, source: Path, prefix: str) -> None:
    """Stage, then "rename" the prefix object by object, as a directory rename is on GCS."""
    staged = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        blob = client.bucket(bucket).blob(f"{prefix}/temp-1/{path.relative_to(source)}")
        blob.upload_from_filename(str(path))
        staged.append(blob)
    for blob in staged:
        client.bucket(bucket).copy_blob(
            blob, client.bucket(bucket), blob.name.replace("/temp-1/", "/1/")
        )
    for blob in staged:
        blob.delete()
    client.bucket(bucket).blob(f"{prefix}/1/export_metadata.json").upload_from_string(b"{}")


def _fill_versions(client: Any, bucket: str, prefix: str) -> None:
    """1,000 versions x 5 objects, made with server-side copies in batches (fast to set up)."""
    sources = [client.bucket(bucket).blob(f"seed/f{i}") for i in range(FILES_PER_VERSION)]
    for blob in sources:
        blob.upload_from_string(b"x" * 64)
    targets = [
        (source, f"{prefix}/{BASE_VERSION + v}/f{i}")
        for v in range(DELETE_VERSIONS)
        for i, source in enumerate(sources)
    ]
    for start in range(0, len(targets), 100):
        with client.batch():
            for source, name in targets[start : start + 100]:
                client.bucket(bucket).copy_blob(source, client.bucket(bucket), name)


def bench_gcs() -> dict[str, Any]:
    with running_emulator() as upstream, RecordingProxy(upstream) as proxy:
        client = emulator_client(proxy.url)
        direct = emulator_client(upstream)
        bucket = direct.create_bucket("bench-retention").name
        storage = GcsStorage(client)
        exporter_uri = f"gs://{bucket}/model/export/best"
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp) / "model"
            _write_savedmodel(source, PUBLISH_FILES)
            GcsStorage(direct).publish_version(source, exporter_uri, _template())
            ours_publish = _count(
                proxy, lambda: storage.publish_version(source, exporter_uri, _template())
            )
            naive_publish = _count(
                proxy, lambda: _naive_publish(client, bucket, source, "naive/export/best")
            )
        print(
            f"publish {PUBLISH_FILES} files: {ours_publish} requests; stage-and-rename "
            f"{naive_publish} requests ({naive_publish / ours_publish:.1f}x)"
        )

        delete_prefix = "model/export/many"
        _fill_versions(direct, bucket, delete_prefix)
        exporter = ExporterDir(storage, f"gs://{bucket}/{delete_prefix}")
        plan = RetentionPlan(
            items=tuple(
                PlanItem(BASE_VERSION + v, False, "", "benchmark") for v in range(DELETE_VERSIONS)
            ),
            staging_delete=(),
            staging_keep=(),
        )
        ours_delete = _count(proxy, lambda: exporter.apply(plan))
        remaining = list(direct.list_blobs(bucket, prefix=delete_prefix + "/"))
        assert remaining == [], f"{len(remaining)} objects were not deleted"

        _fill_versions(direct, bucket, delete_prefix)

        def naive_delete() -> None:
            blobs = list(client.list_blobs(bucket, prefix=delete_prefix + "/"))
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda blob: blob.delete(), blobs))

        naive_delete_requests = _count(proxy, naive_delete)
        print(
            f"delete {DELETE_VERSIONS} versions x {FILES_PER_VERSION} files: {ours_delete} "
            f"requests; one per object {naive_delete_requests} requests "
            f"({naive_delete_requests / ours_delete:.1f}x)"
        )
    return {
        "gcs_requests_publish_50_files": ours_publish,
        "naive_requests_publish_50_files": naive_publish,
        "publish_request_ratio": round(naive_publish / ours_publish, 2),
        "gcs_requests_delete_1000_versions": ours_delete,
        "naive_requests_delete_1000_versions": naive_delete_requests,
        "delete_request_ratio": round(naive_delete_requests / ours_delete, 2),
    }


def main() -> None:
    results = {**bench_planning(), **bench_gcs()}
    print(json.dumps(results, sort_keys=True))


if __name__ == "__main__":
    main()
