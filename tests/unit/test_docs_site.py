"""The documentation site's examples stay true: every Python block of the guide pages runs
as written without importing TensorFlow, every command line of the CLI page parses with the
real parser, the exit codes it lists are the CLI's, and the README's links into docs/ exist.
(docs/eval-events.md's script needs TensorFlow: tests/integration/test_docs_eval_events.py;
the XCom keys of docs/operators.md are checked against a real export in
tests/integration/operators/test_cli_console_script.py.)"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_tf_export.cli.main import EXIT_CODES, parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GUIDE_PAGES = (
    "quickstart.md",
    "templates.md",
    "schemas.md",
    "estimator-backfill.md",
    "scaling-out.md",
)


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)


@pytest.mark.parametrize(
    ("page", "index"),
    [(page, i) for page in GUIDE_PAGES for i in range(len(python_blocks(page)))],
)
def test_each_python_block_runs_without_tensorflow(page: str, index: int) -> None:
    code = python_blocks(page)[index] + "\nimport sys\nprint('tensorflow' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-1] == "False"


def test_the_quick_start_dag_has_the_tasks_the_page_describes() -> None:
    dag_block, deploy_block = python_blocks("quickstart.md")
    check = (
        f"{dag_block}\n{deploy_block}\n"
        "print(sorted(t.task_id for t in wait.dag.tasks))\n"
        "print(best.asset_alias)\n"
        "print(deploy_dag.timetable.asset_condition.uri)\n"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines()[-3:] == [
        "['compare', 'export_best', 'export_latest', 'retention', 'wait_for_eval']",
        "tf-export:/data/models/ctr/export/best",
        "/data/models/ctr/export/best",
    ]


def cli_lines() -> list[str]:
    """The concrete command lines of the CLI page (synopses are `text` blocks)."""
    blocks = re.findall(r"```console\n(.*?)```", (DOCS / "cli.md").read_text(), re.S)
    return [line for block in blocks for line in block.strip().splitlines()]


@pytest.mark.parametrize("line", cli_lines())
def test_each_command_line_of_the_cli_page_parses(line: str) -> None:
    program, *words = shlex.split(line)
    assert program == "airflow-tf-export"
    assert parser().parse_args(words).command in ("versions", "retention", "verify", "export")


def test_the_cli_page_lists_every_exit_code() -> None:
    rows = re.findall(r"^\| (\d) \|", (DOCS / "cli.md").read_text(), re.M)
    assert [int(code) for code in rows] == sorted(EXIT_CODES)


def test_the_readme_links_only_to_pages_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "../shared" not in readme
    targets = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert targets
    for target in targets:
        assert (ROOT / target).exists(), target
