"""What an export decision costs in an exporter dir of 5,000 versions, against what a user would
otherwise write, measured in the same run (interleaved rounds, medians).

Both sides answer the same question for the same candidate: Latest ("is its step newer than
every committed version's, and is it not already exported?") and Best ("does its loss beat
the best committed version's?"), each returning a decision.

- ours: `ExporterDir.scan_indexed` + `decide_in_dir` under the exporter lock, as the export
  flow runs them, in a fresh ExporterDir each round (the index was written by an earlier
  export, as in steady state);
- by hand: list the exporter dir, read and parse every `export_metadata.json`, pick;
- full scan (the figure before this change): `ExporterDir.scan` + the strategy's decision.

Local disk at 50 and 5,000 versions (growth), wall and CPU milliseconds; the GCS emulator
(real HTTP, requests counted by a proxy) at GCS_VERSIONS versions: requests per decision and
milliseconds. The emulator answers a listing in one page where GCS pages at 1,000 objects;
`gcs_list_pages_at_1000_objects` gives what our listing costs there. The last line printed
is one JSON object with every figure.

    .venv/bin/python benchmarks/bench_exporter_dir.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from gcs_fixtures import RecordingProxy, emulator_client, running_emulator
from version_writer import version_files, write_version

from airflow_tf_export.core.eval_result import EvalResult
from airflow_tf_export.core.metadata import METADATA_FILENAME
from airflow_tf_export.core.strategies import BestStrategy, Candidate, LatestStrategy
from airflow_tf_export.storage.base import Storage
from airflow_tf_export.storage.export_flow import ForeignAdopter, decide_in_dir
from airflow_tf_export.storage.exporter_dir import ExporterDir
from airflow_tf_export.storage.gcs import GcsStorage
from airflow_tf_export.storage.local import LocalStorage

BASE_VERSION = 1_700_000_000
SIZES = (50, 5000)
ROUNDS = 15
FULL_SCAN_ROUNDS = 3
GCS_VERSIONS = int(os.environ.get("GCS_VERSIONS", "5000"))
GCS_ROUNDS = 3
TARGET_MS = 50.0
GCS_OBJECTS_PER_VERSION = 6  # version_writer's files, the record and its checksum
LATEST = LatestStrategy(name="latest", exports_to_keep=None)
BEST = BestStrategy(name="best", exports_to_keep=None)


def _loss(i: int) -> float:
    return round(1.0 / (1 + (i * 7919) % 1000), 6)


def _candidate(count: int) -> Candidate:
    step = count * 100
    return Candidate(f"/model/ckpt-{step}", step, EvalResult(step, {"loss": 0.0005}))


def ours(storage: Storage, uri: str, strategy: Any, candidate: Candidate) -> bool:
    """The export flow's decision: one indexed scan and the records deciding it, locked."""
    exporter = ExporterDir(storage, uri)
    with storage.exporter_lock(uri):
        state = exporter.scan_indexed()
        _state, decision, _ = decide_in_dir(
            exporter, state, strategy, candidate, False, ForeignAdopter(None)
        )
    return decision.export


def full_scan(storage: Storage, uri: str, strategy: Any, candidate: Candidate) -> bool:
    """Before: every record read and every version's files listed, then the decision."""
    state = ExporterDir(storage, uri).scan()
    return strategy.decide(state.committed, candidate, foreign=state.foreign_versions).export


def by_hand_local(uri: str, kind: str, candidate: Candidate) -> bool:
    """What a user writes: list the dir, read every record, pick."""
    records = []
    for entry in os.scandir(uri):
        if entry.name.isdigit():
            with open(os.path.join(entry.path, METADATA_FILENAME), "rb") as handle:
                records.append(json.loads(handle.read()))
    return _pick(records, kind, candidate)


def by_hand_gcs(client: Any, bucket: str, prefix: str, kind: str, candidate: Candidate) -> bool:
    """The same on GCS: list the version prefixes, download every record (8 threads)."""
    pages = client.list_blobs(bucket, prefix=f"{prefix}/", delimiter="/")
    list(pages)
    names = [f"{p}{METADATA_FILENAME}" for p in pages.prefixes]
    with ThreadPoolExecutor(8) as pool:
        bodies = pool.map(lambda n: client.bucket(bucket).blob(n).download_as_bytes(), names)
        records = [json.loads(b) for b in bodies]
    return _pick(records, kind, candidate)


def _pick(records: list[dict[str, Any]], kind: str, candidate: Candidate) -> bool:
    if any(r["checkpoint_path"] == candidate.checkpoint_path for r in records):
        return False
    if kind == "latest":
        return candidate.global_step > max((r["global_step"] for r in records), default=-1)
    losses = [r["eval_result"]["metrics"]["loss"] for r in records if r["eval_result"]]
    assert candidate.eval_result is not None
    return candidate.eval_result.metrics["loss"] < min(losses, default=float("inf"))


def _timed(run: Callable[[], bool]) -> tuple[float, float, bool]:
    wall, cpu = time.perf_counter(), time.process_time()
    answer = run()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, answer


def _rounds(sides: dict[str, Callable[[], bool]], rounds: dict[str, int]) -> dict[str, Any]:
    """Interleaved rounds; per side the median wall and CPU ms and the answers given."""
    times: dict[str, list[tuple[float, float, bool]]] = {name: [] for name in sides}
    for round_number in range(max(rounds.values())):
        for name, run in sides.items():
            if round_number < rounds[name]:
                times[name].append(_timed(run))
    return {
        name: {
            "wall_ms": round(statistics.median(t[0] for t in found), 2),
            "cpu_ms": round(statistics.median(t[1] for t in found), 2),
            "answers": sorted({t[2] for t in found}),
        }
        for name, found in times.items()
    }


def bench_local(count: int) -> dict[str, Any]:
    storage = LocalStorage()
    with tempfile.TemporaryDirectory() as tmp:
        uri = str(Path(tmp) / "export" / "e")
        for i in range(count):
            write_version(Path(uri), BASE_VERSION + i, i * 100, _loss(i))
        ExporterDir(storage, uri).write_index(ExporterDir(storage, uri).scan())
        candidate = _candidate(count)
        figures: dict[str, Any] = {}
        for kind, strategy in (("latest", LATEST), ("best", BEST)):
            found = _rounds(
                {
                    "ours": lambda s=strategy: ours(storage, uri, s, candidate),
                    "by_hand": lambda k=kind: by_hand_local(uri, k, candidate),
                    "full_scan": lambda s=strategy: full_scan(storage, uri, s, candidate),
                },
                {"ours": ROUNDS, "by_hand": ROUNDS, "full_scan": FULL_SCAN_ROUNDS},
            )
            assert found["ours"]["answers"] == found["by_hand"]["answers"] == [True], found
            figures[kind] = found
            print(
                f"local {count} versions, {kind}: ours {found['ours']['wall_ms']} ms "
                f"(cpu {found['ours']['cpu_ms']}), by hand {found['by_hand']['wall_ms']} ms, "
                f"full scan {found['full_scan']['wall_ms']} ms"
            )
    return figures


def _upload_versions(client: Any, bucket: str, prefix: str, count: int) -> None:
    def upload(i: int) -> None:
        files = version_files(BASE_VERSION + i, i * 100, _loss(i))
        for name, data in files.items():
            client.bucket(bucket).blob(f"{prefix}/{BASE_VERSION + i}/{name}").upload_from_string(
                data
            )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(upload, range(count)))


def bench_gcs() -> dict[str, Any]:
    with running_emulator() as upstream, RecordingProxy(upstream) as proxy:
        direct = emulator_client(upstream)
        direct.create_bucket("bench")
        started = time.perf_counter()
        _upload_versions(direct, "bench", "model/export/e", GCS_VERSIONS)
        print(f"gcs: {GCS_VERSIONS} versions uploaded in {time.perf_counter() - started:.0f} s")
        client = emulator_client(proxy.url)
        storage = GcsStorage(client)
        uri = "gs://bench/model/export/e"
        ExporterDir(storage, uri).write_index(ExporterDir(storage, uri).scan())
        candidate = _candidate(GCS_VERSIONS)
        figures: dict[str, Any] = {}
        for kind, strategy in (("latest", LATEST), ("best", BEST)):
            requests: dict[str, list[int]] = {"ours": [], "by_hand": []}

            def counted(
                name: str, run: Callable[[], bool], requests: dict[str, list[int]] = requests
            ) -> Callable[[], bool]:
                def go() -> bool:
                    proxy.reset()
                    answer = run()
                    requests[name].append(proxy.count())
                    return answer

                return go

            found = _rounds(
                {
                    "ours": counted("ours", lambda s=strategy: ours(storage, uri, s, candidate)),
                    "by_hand": counted(
                        "by_hand",
                        lambda k=kind: by_hand_gcs(client, "bench", "model/export/e", k, candidate),
                    ),
                },
                {"ours": GCS_ROUNDS, "by_hand": GCS_ROUNDS},
            )
            assert found["ours"]["answers"] == found["by_hand"]["answers"] == [True], found
            for name in requests:
                found[name]["requests"] = int(statistics.median(requests[name]))
            figures[kind] = found
            print(
                f"gcs {GCS_VERSIONS} versions, {kind}: ours {found['ours']['requests']} requests "
                f"{found['ours']['wall_ms']} ms, by hand {found['by_hand']['requests']} requests "
                f"{found['by_hand']['wall_ms']} ms"
            )
    return figures


def main() -> None:
    local = {count: bench_local(count) for count in SIZES}
    gcs = bench_gcs()
    top = local[SIZES[-1]]
    decision_ms = max(top[k]["ours"]["wall_ms"] for k in ("latest", "best"))
    result = {
        "export_decision_ms_5000_versions": decision_ms,
        "export_decision_cpu_ms_5000_versions": max(
            top[k]["ours"]["cpu_ms"] for k in ("latest", "best")
        ),
        "target_ms": TARGET_MS,
        **{
            f"{k}_ours_over_by_hand_5000": round(
                top[k]["ours"]["wall_ms"] / top[k]["by_hand"]["wall_ms"], 3
            )
            for k in ("latest", "best")
        },
        **{
            f"{k}_full_scan_over_ours_5000": round(
                top[k]["full_scan"]["wall_ms"] / top[k]["ours"]["wall_ms"], 1
            )
            for k in ("latest", "best")
        },
        **{
            f"{k}_growth_50_to_5000": {
                side: round(top[k][side]["wall_ms"] / local[SIZES[0]][k][side]["wall_ms"], 1)
                for side in ("ours", "by_hand")
            }
            for k in ("latest", "best")
        },
        "gcs_versions": GCS_VERSIONS,
        # The emulator answers a listing in one page; GCS pages at 1,000 objects, so there
        # our one listing of every object below the exporter dir costs this many requests
        # (the by-hand listing of version prefixes: GCS_VERSIONS / 1,000).
        "gcs_list_pages_at_1000_objects": -(-GCS_VERSIONS * GCS_OBJECTS_PER_VERSION // 1000),
        **{
            f"gcs_requests_per_decision_{k}": {
                side: gcs[k][side]["requests"] for side in ("ours", "by_hand")
            }
            for k in ("latest", "best")
        },
        **{
            f"gcs_{k}_ours_over_by_hand": round(
                gcs[k]["ours"]["wall_ms"] / gcs[k]["by_hand"]["wall_ms"], 3
            )
            for k in ("latest", "best")
        },
        "local": {str(c): v for c, v in local.items()},
        "gcs": gcs,
    }
    result["verdict"] = (
        "pass"
        if decision_ms < TARGET_MS
        and all(result[f"{k}_ours_over_by_hand_5000"] < 1 for k in ("latest", "best"))
        else "fail"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
