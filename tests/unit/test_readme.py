"""The README's DAG example builds a real DAG with the operators it names (it stays true)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_dag_example_builds_without_tensorflow() -> None:
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    check = (
        "import sys\n"
        f"{example}\n"
        "tasks = {t.task_id for t in wait.dag.tasks}\n"
        "print(sorted(tasks), 'tensorflow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == (
        "['compare', 'export_best', 'export_latest', 'retention', 'wait_for_eval'] False"
    )
