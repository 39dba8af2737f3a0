"""DAG parse time: 20 export/compare/retention tasks built from the provider's operators,
against the same DAG with EmptyOperator stand-ins (baseline measured in the same run).

Each parse runs in a fresh Python process, as Airflow's "DAG loader test"
(`time python dag_file.py`) does: interpreter start, `import airflow.sdk`, then loading the
DAG file. `parse_seconds_median` and `parse_ratio_vs_empty` are that whole fresh-process
parse. The process also times the DAG file alone (provider imports plus building the tasks,
after airflow.sdk is imported): `file_only_*` shows that increment on its own. It reports
whether `tensorflow` was imported (it must not be). The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARSES = 11
TARGET_RATIO = 1.2

HEADER = """from __future__ import annotations

from airflow.sdk import DAG

MODEL = "airflow_tf_export.example.model:definition"
MODEL_DIR = "/models/{{ params.model }}"
"""

OPERATORS_DAG = (
    HEADER
    + """
from airflow_tf_export.operators.compare import CompareBranchOperator, CompareOperator
from airflow_tf_export.operators.export import (
    BestExportOperator,
    FinalExportOperator,
    LatestExportOperator,
)
from airflow_tf_export.operators.retention import RetentionOperator

with DAG(dag_id="bench_operators", schedule=None, params={"model": "m"}) as dag:
    for i in range(4):
        eval_xcom = "{{ ti.xcom_pull(task_ids='compare_%d') }}" % i
        CompareOperator(task_id=f"compare_{i}", model_dir=MODEL_DIR, name=f"best_{i}")
        BestExportOperator(
            task_id=f"best_{i}",
            name=f"best_{i}",
            model_definition=MODEL,
            model_dir=MODEL_DIR,
            eval_result=eval_xcom,
        )
        LatestExportOperator(
            task_id=f"latest_{i}",
            name=f"latest_{i}",
            model_definition=MODEL,
            model_dir=MODEL_DIR,
            modes=("train", "eval", "serve"),
        )
        RetentionOperator(
            task_id=f"retention_{i}",
            exporter_dirs=[MODEL_DIR + f"/export/best_{i}"],
            keep={"newest": 3, "best": {"n": 2, "metric": "auc", "higher_is_better": True}},
            model_dir=MODEL_DIR,
            checkpoints_to_keep=5,
        )
    for i in range(2):
        CompareBranchOperator(
            task_id=f"branch_{i}",
            model_dir=MODEL_DIR,
            comparison={"metric": "auc", "higher_is_better": True},
            follow_task_ids_if_better=f"best_{i}",
        )
        FinalExportOperator(
            task_id=f"final_{i}",
            name=f"final_{i}",
            model_definition=MODEL,
            model_dir=MODEL_DIR,
            max_steps=100,
        )
"""
)

EMPTY_DAG = (
    HEADER
    + """
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG(dag_id="bench_empty", schedule=None, params={"model": "m"}) as dag:
    for i in range(4):
        for kind in ("compare", "best", "latest", "retention"):
            EmptyOperator(task_id=f"{kind}_{i}")
    for i in range(2):
        for kind in ("branch", "final"):
            EmptyOperator(task_id=f"{kind}_{i}")
"""
)

PARSE_SCRIPT = """
import importlib.util, json, sys, time
import airflow.sdk
path = sys.argv[1]
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_dag_file", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - start
dags = [d for d in vars(module).values() if isinstance(d, airflow.sdk.DAG)]
tasks = len(dags[0].tasks) if dags else 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
print(json.dumps({"seconds": seconds, "tasks": tasks, "tensorflow": bool(heavy)}))
"""


def parse_once(dag_file: Path, env: dict[str, str]) -> dict[str, float | int | bool]:
    """One fresh-process parse: its wall time, and what the process measured itself."""
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", PARSE_SCRIPT, str(dag_file)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,
    )
    process_seconds = time.perf_counter() - start
    result: dict[str, float | int | bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return {**result, "process_seconds": process_seconds}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-dag-parse-") as work:
        env = {**os.environ, "AIRFLOW_HOME": work, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        files = {"operators": Path(work, "operators_dag.py"), "empty": Path(work, "empty_dag.py")}
        files["operators"].write_text(OPERATORS_DAG)
        files["empty"].write_text(EMPTY_DAG)
        runs: dict[str, list[dict[str, float | int | bool]]] = {"operators": [], "empty": []}
        parse_once(files["empty"], env)  # warm the OS file cache for both sides alike
        for _ in range(PARSES):
            for kind, path in files.items():
                runs[kind].append(parse_once(path, env))
    medians = {
        k: statistics.median(float(r["process_seconds"]) for r in v) for k, v in runs.items()
    }
    file_only = {k: statistics.median(float(r["seconds"]) for r in v) for k, v in runs.items()}
    tasks = {k: int(v[0]["tasks"]) for k, v in runs.items()}
    ratio = medians["operators"] / medians["empty"]
    tensorflow_imported = any(bool(r["tensorflow"]) for r in runs["operators"])
    print(f"parses per DAG file: {PARSES} (each in a fresh process)")
    for kind in runs:
        print(
            f"{kind:>9}: {tasks[kind]} tasks, fresh-process parse median "
            f"{medians[kind] * 1000:.0f} ms, DAG file alone {file_only[kind] * 1000:.1f} ms"
        )
    print(f"ratio operators/empty: {ratio:.3f} (target <= {TARGET_RATIO})")
    print(f"tensorflow imported after parsing: {tensorflow_imported}")
    print(
        json.dumps(
            {
                "parse_ratio_vs_empty": round(ratio, 3),
                "parse_seconds_median": round(medians["operators"], 4),
                "baseline_parse_seconds_median": round(medians["empty"], 4),
                "file_only_seconds_median": round(file_only["operators"], 4),
                "file_only_baseline_seconds_median": round(file_only["empty"], 4),
                "file_only_ratio_vs_empty": round(file_only["operators"] / file_only["empty"], 3),
                "tasks": tasks["operators"],
                "parses": PARSES,
                "target_ratio": TARGET_RATIO,
                "tensorflow_imported": tensorflow_imported,
            }
        )
    )


if __name__ == "__main__":
    main()
