"""The examples of docs/model-dir.md run as written: the DAG builds without TensorFlow, and
the retention plan prints exactly the output the page shows."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "model-dir.md"


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_retention_dag_example_builds_without_tensorflow() -> None:
    dag_example, _ = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    check = (
        "import sys\n"
        f"{dag_example}\n"
        "(task,) = dag.tasks\n"
        "print(task.task_id, task.checkpoint_prefix, task.report_only)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    assert run(check).splitlines()[-2:] == ["thin_checkpoints model.ckpt True", "False"]


def test_the_plan_example_prints_what_the_page_shows() -> None:
    _, plan_example = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)
    (shown,) = re.findall(r"prints\n\n```text\n(.*?)```", PAGE.read_text(), re.S)
    assert run(plan_example) == shown
