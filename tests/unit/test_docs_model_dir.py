"""The examples of docs/model-dir.md run as written: the recorded-path rule and the retention
plan print exactly the output the page shows, and the DAG builds without TensorFlow."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "model-dir.md"


def examples() -> list[tuple[str, str | None]]:
    """Each python example with the text block it prints (None for one that prints none)."""
    found = re.findall(
        r"```python\n(.*?)```(?:\n\nprints\n\n```text\n(.*?)```)?", PAGE.read_text(), re.S
    )
    return [(code, shown or None) for code, shown in found]


def run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_retention_dag_example_builds_without_tensorflow() -> None:
    (dag_example,) = [code for code, shown in examples() if shown is None]
    check = (
        "import sys\n"
        f"{dag_example}\n"
        "(task,) = dag.tasks\n"
        "print(task.task_id, task.checkpoint_prefix, task.report_only)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    assert run(check).splitlines()[-2:] == ["thin_checkpoints model.ckpt True", "False"]


def test_the_printing_examples_print_what_the_page_shows() -> None:
    printing = [(code, shown) for code, shown in examples() if shown is not None]
    assert len(printing) == 2
    for code, shown in printing:
        assert run(code) == shown
