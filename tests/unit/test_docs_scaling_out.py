"""docs/scaling-out.md stays true: its warning is the one an export logs, its DAG routes
only the export task to the TensorFlow queue and pool, and the page is in the toctree.
(Its Python block also runs without TensorFlow in test_docs_site.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from airflow_tf_export.core.executors import local_path_warning

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGE = (DOCS / "scaling-out.md").read_text()


def test_the_warning_shown_is_the_one_logged() -> None:
    (shown,) = re.findall(r"```text\n(.*?)\n```", PAGE, re.S)
    warning = local_path_warning(
        executor_setting="CeleryExecutor",
        task_executor=None,
        local_paths=["/data/models/ctr", "/data/models/ctr/export/best"],
    )
    assert shown == f"best export 'best': {warning}"


def test_the_example_routes_the_export_to_the_tensorflow_queue_and_pool() -> None:
    (block,) = re.findall(r"```python\n(.*?)```", PAGE, re.S)
    check = (
        f"{block}\nfor t in sorted(dag.tasks, key=lambda t: t.task_id):\n"
        "    print(t.task_id, t.queue, t.pool)\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    routed = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
    assert routed.pop("export_best") == ["tensorflow", "tf_exports"]
    assert routed and all(queue != "tensorflow" for queue, _pool in routed.values())


def test_the_page_is_in_the_toctree() -> None:
    toctree = (DOCS / "index.md").read_text().split("```{toctree}")[1].split("```")[0]
    assert "\nscaling-out\n" in toctree
